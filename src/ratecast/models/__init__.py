"""Rating models: one module per model (its config, Keras network, targets and loss, output-to-rating rule,
all-items scoring and cold-start support), registered by name in :data:`MODELS`.

Loading this package sets up the on-disk cache of compiled programs (:mod:`ratecast.compile_cache`) before any
model computes."""

from ..compile_cache import use_compilation_cache

use_compilation_cache()  # before any model computes

from .base import MODELS, RatingModel, split_params  # noqa: E402
from .baselines import BaselineConfig, BaselineModel, PopularityConfig, PopularityModel  # noqa: E402
from .bayesian import BayesianConfig, BayesianModel  # noqa: E402
from .classification import ClassificationConfig, ClassificationModel  # noqa: E402
from .config import ModelConfig, TrainingConfig  # noqa: E402
from .deep import DeepConfig, DeepModel  # noqa: E402
from .dot import BiasedDotConfig, BiasedDotModel, DotConfig, DotModel  # noqa: E402
from .hybrid import HybridConfig, HybridModel  # noqa: E402
from .implicit import ImplicitConfig, ImplicitModel  # noqa: E402

CONFIGS = {name: cls.config_class for name, cls in MODELS.items()}

__all__ = [
    "MODELS", "CONFIGS", "RatingModel", "ModelConfig", "TrainingConfig", "split_params",
    "DotConfig", "BiasedDotConfig", "DeepConfig", "HybridConfig", "ClassificationConfig",
    "DotModel", "BiasedDotModel", "DeepModel", "HybridModel", "ClassificationModel",
    "BayesianConfig", "BayesianModel", "BaselineConfig", "PopularityConfig", "BaselineModel", "PopularityModel", "ImplicitConfig", "ImplicitModel",
]  # fmt: skip
