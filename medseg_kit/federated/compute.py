"""How a training step computes, apart from what it computes: mixed precision (autocast,
loss scaling) and compiled stages.

A run whose config asks for one of them (``precision`` other than ``fp32``, ``compile``)
trains with a :class:`TrainingLoss` in place of its plain loss (``Run.loss_fn``): it is
called like the loss, and :func:`~medseg_kit.federated.strategies.base.train_whole` and
:func:`~medseg_kit.federated.strategies.base.train_split` read from it how to run the
forward passes and how to step. A default run (``fp32``, eager) keeps its plain loss and
computes exactly what it always did. (``channels_last`` needs no help here: the run keeps
its weights and its training batches in that memory format.)

- ``bf16`` / ``fp16``: every stage runs under :func:`torch.autocast` on the run's device;
  the loss is computed in float32 on the logits; backward runs outside autocast. What
  crosses the cut is what the stages computed (2-byte activations and gradients where
  autocast made them so), and the wire counts it as such. ``fp16`` scales the loss
  (:class:`torch.amp.GradScaler`, one per site turn, shared by the site's and the server's
  optimizer), so every gradient that crosses is scaled; both sides unscale before they
  clip, and a step with an overflow is skipped.
- ``compile``: each run of stages that training makes (a whole network; a part's front,
  middle or back stages) is compiled as one graph (:func:`torch.compile`, on first use,
  shapes static); evaluation and BatchNorm calibration run the same modules eagerly.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Callable

import torch
from torch import nn

from ..models.staged import run_stages

#: the precisions a run may train in (the config's and the CLI's list)
PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_compile() -> None:
    """Raise a one-line error when :func:`torch.compile` cannot run here."""
    try:
        import torch._dynamo as dynamo
        supported = dynamo.is_dynamo_supported()
    except Exception as e:  # noqa: BLE001 - any failure to import means "not here"
        raise RuntimeError(f"compile=True needs torch.compile, which failed to load "
                           f"here ({e}); train without compile") from None
    if not supported:
        raise RuntimeError("compile=True needs torch.compile, which this Python or "
                           "platform does not support; train without compile")


class TrainingLoss:
    """The run's loss with the way training computes it (see the module's docstring).

    Args:
        loss_fn: the plain loss ``(logits, target) -> scalar``.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        device: the run's device (autocast and the loss scaler work on its type).
        compile: compile the stages training runs.
    """

    def __init__(self, loss_fn: Loss, precision: str = "fp32",
                 device: torch.device | str = "cpu", compile: bool = False):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}; choose one of "
                             f"{', '.join(PRECISIONS)}")
        if compile:
            check_compile()
        self.loss_fn, self.precision, self.compile = loss_fn, precision, compile
        self.device_type = torch.device(device).type
        self.dtype = DTYPES.get(precision)
        self._forwards: dict[nn.Module, _Forward] = {}

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss, in float32 whatever precision the logits were computed in."""
        return self.loss_fn(logits.float(), target)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler | None:
        """A fresh loss scaler for one site turn (``fp16``), else ``None``."""
        return torch.amp.GradScaler(self.device_type) if self.precision == "fp16" else None

    def forward(self, module: nn.Module) -> _Forward:
        """What runs ``module``'s stages in training: ``.run(env, start, stop)`` as a
        :class:`~medseg_kit.split.Part` or :class:`~medseg_kit.models.StagedNet` has, under
        autocast and with compiled stages (made once per module)."""
        fwd = self._forwards.get(module)
        if fwd is None:
            fwd = self._forwards[module] = _Forward(module, self.autocast, self.compile)
        return fwd


class _Forward:
    """A module's stages run under autocast, eagerly or compiled (parameters shared)."""

    def __init__(self, module: nn.Module, autocast, compile: bool):
        self.module, self.autocast, self.compile = module, autocast, compile
        self._compiled: dict[tuple[int, int | None], Callable] = {}

    def run(self, env: dict[str, torch.Tensor], start: int = 0, stop: int | None = None
            ) -> dict[str, torch.Tensor]:
        with self.autocast():
            if not self.compile:
                return self.module.run(env, start, stop)
            fn = self._compiled.get((start, stop))
            if fn is None:  # one graph per run of stages (few compilations, more fusion)
                fn = self._compiled[(start, stop)] = torch.compile(
                    _segment_function(self.module.specs, start, stop), dynamic=False)
            try:
                return fn(self.module.stages, self.module.specs, env, start, stop)
            except Exception as e:  # a compiler that fails here: one line, not a page
                if not type(e).__module__.startswith(("torch._dynamo", "torch._inductor")):
                    raise
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise RuntimeError(f"compile=True: torch.compile failed on this machine "
                                   f"({type(e).__name__}: {first}); train without "
                                   "compile") from e


def _run_segment(stages: nn.ModuleDict, specs, env: dict[str, torch.Tensor], start: int,
                 stop: int | None) -> dict[str, torch.Tensor]:
    return run_stages(specs, stages, env, start, stop)


#: (stage table, start, stop) -> a copy of :func:`_run_segment` with a code object of its own
_SEGMENTS: dict[tuple, Callable] = {}


def _segment_function(specs, start: int, stop: int | None) -> Callable:
    """:func:`_run_segment` for one run of stages of one stage table. Dynamo keeps the
    graphs it compiles per code object, and only a few (``recompile_limit``; then it falls
    back to eager): the front, server and back stages of a model, and other models, each
    get their own code object, while the copies of a part at every site share theirs (and
    its graphs)."""
    key = (tuple(specs), start, stop)
    fn = _SEGMENTS.get(key)
    if fn is None:
        code = _run_segment.__code__.replace()  # equal, but another object
        fn = _SEGMENTS[key] = types.FunctionType(code, _run_segment.__globals__,
                                                 _run_segment.__name__)
    return fn


def step(optimizers: list[torch.optim.Optimizer], scaler: torch.amp.GradScaler | None
         ) -> None:
    """Step ``optimizers`` in order (through ``scaler`` when there is one)."""
    if scaler is None:
        for opt in optimizers:
            opt.step()
        return
    for opt in optimizers:
        scaler.step(opt)
    scaler.update()
