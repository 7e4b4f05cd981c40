"""The model zoo: every network is a :class:`StagedNet` built by :func:`create_model`.

The ten networks of MedSegNet10, in the order of that paper's list: ``unet``, ``segnet``,
``deeplabv3``, ``deeplabv3plus``, ``refinenet``, ``sunet``, ``cgnet``, ``ducknet``,
``attention_unet``, ``swin_unet``. Each family file registers its variants on import.
:func:`check_input_size` refuses, in one line, an unknown name or an input side a model
cannot take, before any data loads.
"""

from . import unet  # noqa: I001,F401  (imports register the families, in this order)
from . import segnet, deeplab, refinenet, sunet, cgnet, ducknet  # noqa: F401
from . import attention_unet, swin_unet  # noqa: F401
from .registry import (ModelInfo, check_input_size, create_model, list_models, model_info,
                       register_model)
from .staged import INPUT, OUTPUT, Lambda, Stage, StagedNet, StageSpec

__all__ = ["INPUT", "OUTPUT", "Lambda", "ModelInfo", "Stage", "StageSpec", "StagedNet",
           "check_input_size", "create_model", "list_models", "model_info", "register_model"]
