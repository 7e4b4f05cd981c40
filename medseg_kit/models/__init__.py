"""The model zoo: every network is a :class:`StagedNet` built by :func:`create_model`."""

from . import unet  # noqa: F401  (registers the family)
from .registry import ModelInfo, create_model, list_models, model_info, register_model
from .staged import INPUT, OUTPUT, Lambda, Stage, StagedNet, StageSpec

__all__ = ["INPUT", "OUTPUT", "Lambda", "ModelInfo", "Stage", "StageSpec", "StagedNet",
           "create_model", "list_models", "model_info", "register_model"]
