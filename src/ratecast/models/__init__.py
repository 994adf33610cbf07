"""Rating models: one module per model (its config, Keras network, targets and loss, output-to-rating rule,
all-items scoring and cold-start support), registered by name in :data:`MODELS`.

Loading this package sets up the on-disk cache of compiled programs (:mod:`ratecast.engine.cache`) before any
model computes."""

from ..engine.cache import use_compilation_cache

use_compilation_cache()

from .base import MODELS, RatingModel, split_params
from .baselines import BaselineConfig, BaselineModel, PopularityConfig, PopularityModel
from .bayesian import BayesianConfig, BayesianModel
from .classification import ClassificationConfig, ClassificationModel
from .config import ModelConfig, TrainingConfig
from .deep import DeepConfig, DeepModel
from .dot import BiasedDotConfig, BiasedDotModel, DotConfig, DotModel
from .hybrid import HybridConfig, HybridModel
from .implicit import ImplicitConfig, ImplicitModel

CONFIGS = {name: cls.config_class for name, cls in MODELS.items()}

__all__ = [
    "MODELS", "CONFIGS", "RatingModel", "ModelConfig", "TrainingConfig", "split_params",
    "DotConfig", "BiasedDotConfig", "DeepConfig", "HybridConfig", "ClassificationConfig",
    "DotModel", "BiasedDotModel", "DeepModel", "HybridModel", "ClassificationModel",
    "BayesianConfig", "BayesianModel", "BaselineConfig", "PopularityConfig", "BaselineModel", "PopularityModel", "ImplicitConfig", "ImplicitModel",
]  # fmt: skip
