"""The model zoo's public face: ``create_model`` and ``list_models``.

Each family file registers one small entry function per variant with
:func:`register_model`; the entry function only sets arguments and calls the family's
private builder.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from .staged import StagedNet


@dataclass(frozen=True)
class ModelInfo:
    name: str
    builder: Callable[..., StagedNet]
    teaching_width: int
    paper_width: int
    reference: str
    published_params: str = ""


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, teaching_width: int, paper_width: int, reference: str,
                   published_params: str = ""):
    """Decorator: add an entry function ``fn(in_channels, num_classes, width, **kw)``."""

    def wrap(fn: Callable[..., StagedNet]) -> Callable[..., StagedNet]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, fn, teaching_width, paper_width, reference,
                                    published_params)
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, in registration order."""
    return [n for n in _REGISTRY if fnmatch.fnmatch(n, pattern)]


def model_info(name: str) -> ModelInfo:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown model {name!r}; available models: {', '.join(list_models())}") from None


def create_model(name: str, in_channels: int = 3, num_classes: int = 1,
                 width: int | str | None = None, **kwargs) -> StagedNet:
    """Build a registered model.

    Args:
        name: a name from :func:`list_models`, e.g. ``"unet"``.
        in_channels: image channels (3 for RGB, 1 for grey).
        num_classes: 1 for a binary mask (one logit), ``K`` for ``K`` classes.
        width: base channel count; ``None`` or ``"teaching"`` picks the CPU-friendly
            default, ``"paper"`` the width of the original paper.
        **kwargs: family-specific options (e.g. ``output_stride`` for DeepLab).

    Returns:
        A :class:`StagedNet` with ``model_name`` set.

    Example:
        >>> net = create_model("unet", in_channels=3, num_classes=1, width=8)
        >>> len(net)
        10
    """
    info = model_info(name)
    if width is None or width == "teaching":
        width = info.teaching_width
    elif width == "paper":
        width = info.paper_width
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive int, 'teaching' or 'paper'; got {width!r}")
    if in_channels < 1 or num_classes < 1:
        raise ValueError(f"in_channels and num_classes must be >= 1; got {in_channels}, "
                         f"{num_classes}")
    net = info.builder(in_channels=in_channels, num_classes=num_classes, width=width, **kwargs)
    net.model_name = name
    net.width = width
    return net
