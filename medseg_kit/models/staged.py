"""The stage protocol: every network in the kit is an ordered list of named stages.

A stage reads named tensors from an environment and writes one (or, rarely, a few)
named tensors back. ``x`` is the input image; the last stage writes ``logits``. A skip
connection is nothing special: it is a tensor written early and read by a later stage.

This table is the whole contract between a model and the rest of the kit. ``split.py``
cuts any :class:`StagedNet` between two stage indices without knowing which family it
belongs to; the byte accounting, the raw-data check and the SplitFed protocol all work
from the table.

Example:
    >>> import torch
    >>> from medseg_kit.models import create_model
    >>> net = create_model("unet", in_channels=3, num_classes=1, width=4)
    >>> [s.name for s in net.specs][:3]
    ['enc1', 'enc2', 'enc3']
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 1, 32, 32])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

INPUT = "x"
OUTPUT = "logits"


@dataclass(frozen=True)
class StageSpec:
    """One row of a stage table.

    Attributes:
        name: unique stage name (``enc1``, ``aspp``, ``head`` ...); also the key of its
            module in ``StagedNet.stages``, so it appears in every ``state_dict`` key.
        inputs: names of the tensors the stage reads, in the order its module takes them.
        outputs: names of the tensors it writes (one for nearly every stage).
    """

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


class Stage:
    """A stage under construction: a module plus the names it reads and writes."""

    def __init__(self, name: str, module: nn.Module, inputs: str | Sequence[str],
                 outputs: str | Sequence[str] | None = None):
        self.name = name
        self.module = module
        self.inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs)
        if outputs is None:
            outputs = name
        self.outputs = (outputs,) if isinstance(outputs, str) else tuple(outputs)


class StagedNet(nn.Module):
    """A network written as an ordered table of stages.

    Args:
        stages: the stages in execution order. Every input must be ``x`` or an output of
            an earlier stage; the last stage must write ``logits``.
        in_channels, num_classes: recorded for the registry and the CLI.
        size_multiple: input height and width must be multiples of this (e.g. 16 for a
            UNet with four poolings).
        min_size: smallest accepted height/width. Together with ``size_multiple`` this
            is the model's exact rule: a side is accepted if and only if the forward pass
            returns logits of the input's size (``tests/test_models.py`` checks every
            model from 1 to 160 px).
        valid_sizes: optional explicit set of accepted sizes (overrides the two above).
        default_cut: ``(front, back)`` in the spirit of the model's paper.

    Raises:
        ValueError: if the table is malformed (unknown input, duplicate name, no logits).
    """

    def __init__(self, stages: Sequence[Stage], *, in_channels: int, num_classes: int,
                 size_multiple: int = 1, min_size: int = 1,
                 valid_sizes: Iterable[int] | None = None,
                 default_cut: tuple[int, int] | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.size_multiple = size_multiple
        self.min_size = min_size
        self.valid_sizes = tuple(sorted(valid_sizes)) if valid_sizes is not None else None
        self.stages = nn.ModuleDict()
        specs = []
        known = {INPUT}
        for st in stages:
            if st.name in self.stages:
                raise ValueError(f"duplicate stage name {st.name!r}")
            missing = [t for t in st.inputs if t not in known]
            if missing:
                raise ValueError(
                    f"stage {st.name!r} reads {missing}, which no earlier stage writes "
                    f"(known so far: {sorted(known)})")
            self.stages[st.name] = st.module
            specs.append(StageSpec(st.name, st.inputs, st.outputs))
            known.update(st.outputs)
        if not specs or OUTPUT not in specs[-1].outputs:
            raise ValueError(f"the last stage must write {OUTPUT!r}")
        self.specs: tuple[StageSpec, ...] = tuple(specs)
        n = len(specs)
        self.default_cut = default_cut or (1, n - 1)
        self._learned = self._find_learned()
        self._specs_cache: dict[tuple, dict[str, tuple[tuple[int, ...], torch.dtype]]] = {}

    # ----------------------------------------------------------------- the table
    def __len__(self) -> int:
        return len(self.specs)

    @property
    def stage_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def producer(self) -> dict[str, int]:
        """Map each tensor name to the index of the stage that writes it (``x``: -1)."""
        out = {INPUT: -1}
        for i, s in enumerate(self.specs):
            for t in s.outputs:
                out[t] = i
        return out

    def _find_learned(self) -> dict[str, bool]:
        """Which tensors depend on a learned parameter.

        A tensor computed without any learned parameter from the image (the image itself
        or a pooled copy of it) is *raw image data*: it tells the server as much as the
        image does. This is derived from the table, never written by hand.
        """
        learned = {INPUT: False}
        for s in self.specs:
            has_params = any(True for _ in self.stages[s.name].parameters())
            val = has_params or any(learned[t] for t in s.inputs)
            for t in s.outputs:
                learned[t] = val
        return learned

    def is_raw(self, tensor: str) -> bool:
        """True if ``tensor`` is the image or computed from it without learned parameters."""
        return not self._learned[tensor]

    def stage_params(self, index: int) -> int:
        return sum(p.numel() for p in self.stages[self.specs[index].name].parameters())

    # --------------------------------------------------------------- running it
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError naming the accepted sizes if ``x`` cannot be processed."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} expects a batch of shape (N, {self.in_channels}, H, W); "
                f"got {tuple(x.shape)}")
        for side in x.shape[-2:]:
            if not self.accepts(int(side)):
                raise ValueError(
                    f"{self.name_for_errors()} cannot take an input of size "
                    f"{tuple(x.shape[-2:])}: {self.size_rule()}")

    def accepts(self, side: int) -> bool:
        if self.valid_sizes is not None:
            return side in self.valid_sizes
        return side >= self.min_size and side % self.size_multiple == 0

    def size_rule(self) -> str:
        if self.valid_sizes is not None:
            return f"valid sizes are {list(self.valid_sizes)}"
        return (f"height and width must be multiples of {self.size_multiple} "
                f"and at least {self.min_size} (e.g. {self.example_sizes()})")

    def size_phrase(self) -> str:
        """The rule in words: ``'multiples of 16 and at least 16'``."""
        if self.valid_sizes is not None:
            return f"one of {list(self.valid_sizes)}"
        return f"multiples of {self.size_multiple} and at least {self.min_size}"

    def nearest_sizes(self, side: int) -> list[int]:
        """The accepted sizes closest to ``side`` from below and from above (one or two)."""
        if self.valid_sizes is not None:
            below = [s for s in self.valid_sizes if s <= side][-1:]
            above = [s for s in self.valid_sizes if s >= side][:1]
        else:
            m, lo = self.size_multiple, self.min_size
            down = side // m * m
            up = max(-(-side // m) * m, -(-lo // m) * m)
            below = [down] if down >= lo else []
            above = [up]
        return sorted(set(below + above))

    def example_sizes(self) -> list[int]:
        return [s for s in (32, 64, 96, 128, 160, 192, 224, 256, 320, 384, 512)
                if self.accepts(s)][:5]

    def name_for_errors(self) -> str:
        return getattr(self, "model_name", type(self).__name__)

    def run(self, env: dict[str, torch.Tensor], start: int = 0, stop: int | None = None
            ) -> dict[str, torch.Tensor]:
        """Run stages ``[start, stop)`` on ``env`` (updated in place and returned)."""
        return run_stages(self.specs, self.stages, env, start, stop)

    def tensor_specs(self, size: int | tuple[int, int]
                     ) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """Shape per image (no batch dimension) and dtype of every tensor of the table.

        Found with one forward pass of a zero image (eval mode, no grad) and remembered
        per input size, dtype and device: shapes do not depend on the weights, so the byte
        accounting of every cut costs one forward pass in all.
        """
        h, w = (size, size) if isinstance(size, int) else size
        p = next(self.parameters())
        key = (h, w, p.dtype, p.device)
        if key not in self._specs_cache:
            x = torch.zeros(1, self.in_channels, h, w, device=p.device, dtype=p.dtype)
            self.check_input(x)
            was_training = self.training
            self.eval()
            try:
                with torch.no_grad():
                    env = self.run({INPUT: x})
            finally:
                self.train(was_training)
            self._specs_cache[key] = {k: (tuple(v.shape[1:]), v.dtype) for k, v in env.items()}
        return self._specs_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.run({INPUT: x})[OUTPUT]

    def describe(self) -> str:
        """The stage table as text: one line a stage, with its parameter count."""
        lines = []
        for i, s in enumerate(self.specs):
            raw = " (raw image data)" if not any(self._learned[t] for t in s.outputs) else ""
            lines.append(f"{i:>2} {s.name:<12} {','.join(s.inputs):<18} -> "
                         f"{','.join(s.outputs):<10} {self.stage_params(i):>10,} params{raw}")
        return "\n".join(lines)


def run_stages(specs: Sequence[StageSpec], modules: nn.ModuleDict, env: dict[str, torch.Tensor],
               start: int = 0, stop: int | None = None) -> dict[str, torch.Tensor]:
    """Run ``specs[start:stop]`` with the modules of ``modules`` (keyed by stage name).

    The one place where a stage table is executed: a whole network and every part of a
    split run through here.
    """
    stop = len(specs) if stop is None else stop
    for spec in specs[start:stop]:
        out = modules[spec.name](*(env[t] for t in spec.inputs))
        if len(spec.outputs) == 1:
            env[spec.outputs[0]] = out
        else:
            env.update(zip(spec.outputs, out, strict=True))
    return env


class Lambda(nn.Module):
    """A parameter-free stage (pooling a copy of the image, a concatenation...)."""

    def __init__(self, fn, name: str = "lambda"):
        super().__init__()
        self.fn = fn
        self.label = name

    def forward(self, *xs):
        return self.fn(*xs)

    def extra_repr(self) -> str:
        return self.label
