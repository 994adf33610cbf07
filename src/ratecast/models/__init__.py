"""Rating models: a registry name -> Keras model class, and one config object per model."""

from .base import MODELS, RatingModel
from .config import (
    CONFIGS,
    BiasedDotConfig,
    ClassificationConfig,
    DeepConfig,
    DotConfig,
    HybridConfig,
    ModelConfig,
    TrainingConfig,
    split_params,
)
from .deep import ClassificationModel, DeepModel, HybridModel
from .dot import BiasedDotModel, DotModel

__all__ = [
    "MODELS", "CONFIGS", "RatingModel", "ModelConfig", "TrainingConfig", "split_params",
    "DotConfig", "BiasedDotConfig", "DeepConfig", "HybridConfig", "ClassificationConfig",
    "DotModel", "BiasedDotModel", "DeepModel", "HybridModel", "ClassificationModel",
]  # fmt: skip
