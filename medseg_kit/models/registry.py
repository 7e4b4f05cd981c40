"""The model zoo's public face: ``create_model``, ``list_models``, ``check_input_size``.

Each family file registers one small entry function per variant with
:func:`register_model`; the entry function only sets arguments and calls the family's
private builder.

Which square input sizes a model takes is written once, in the family's
:class:`StagedNet` (``size_multiple`` and ``min_size``: exactly the sizes whose forward
pass returns logits of the input's size). :func:`check_input_size` reads it from a
shapes-only copy of the model, so a command can refuse a bad size before any data loads.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .staged import StagedNet


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about a model besides how to build it.

    Attributes:
        name: the registered name.
        builder: the entry function ``fn(in_channels, num_classes, width, **kw)``.
        teaching_width: the default ``width``: trains on a laptop CPU.
        paper_width: the ``width`` of the cited paper's network.
        reference: the paper the family implements.
        published_params: a parameter count from the literature (``"31.0M"``), or ``""``.
        published_source: what that count is of: which paper or code, which configuration.
        published_comparable: True if the count is of the network the kit builds at
            ``paper_width`` (same dimensionality, width and depth; small implementation
            differences are listed in the family's docstring), False if it counts another
            configuration (then comparing it with the kit's count says nothing).
    """

    name: str
    builder: Callable[..., StagedNet]
    teaching_width: int
    paper_width: int
    reference: str
    published_params: str = ""
    published_source: str = ""
    published_comparable: bool = True


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(name: str, *, teaching_width: int, paper_width: int, reference: str,
                   published_params: str = "", published_source: str = "",
                   published_comparable: bool = True):
    """Decorator: add an entry function ``fn(in_channels, num_classes, width, **kw)``.

    A ``published_params`` figure needs its ``published_source`` (what it counts).
    """
    if published_params and not published_source:
        raise ValueError(f"model {name!r}: say what published_params={published_params!r} "
                         "counts (published_source)")

    def wrap(fn: Callable[..., StagedNet]) -> Callable[..., StagedNet]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, fn, teaching_width, paper_width, reference,
                                    published_params, published_source or
                                    "no count published", published_comparable)
        return fn

    return wrap


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, in registration order."""
    return [n for n in _REGISTRY if fnmatch.fnmatch(n, pattern)]


@functools.cache
def _shape_model(name: str) -> StagedNet:
    """The model at its teaching width on the ``meta`` device: shapes only, no memory.

    Building on ``meta`` draws no random numbers, so a check made between seeding and
    training leaves the training bit-identical.
    """
    with torch.device("meta"):
        return create_model(name)


def check_input_size(name: str, size: int) -> None:
    """Refuse, in one line, an unknown model or a square input size it cannot take.

    The rule is the model's own (its default options): e.g. UNet's four poolings need a
    multiple of 16. Costs a shapes-only build the first time a model is asked about.

    Args:
        name: a name from :func:`list_models`.
        size: the image side the images will be resized to.

    Raises:
        ValueError: for an unknown name (the message lists the models), a size that is not
            a positive int, or a size the model does not accept (the message states the
            rule and the nearest accepted sizes).

    Example:
        >>> check_input_size("unet", 64)
        >>> check_input_size("unet", 65)
        Traceback (most recent call last):
        ...
        ValueError: unet accepts input sizes that are multiples of 16 and at least 16; got 65 ...
    """
    net = _shape_model(name)  # raises for an unknown name
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"input size must be a positive int; got {size!r}")
    if not net.accepts(size):
        nearest = " or ".join(str(s) for s in net.nearest_sizes(size))
        raise ValueError(f"{name} accepts input sizes that are {net.size_phrase()}; "
                         f"got {size} (nearest: {nearest})")


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
