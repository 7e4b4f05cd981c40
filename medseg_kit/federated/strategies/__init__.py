"""Learning schemes, one module each, all driven by the same run loop."""

from __future__ import annotations

from .base import RoundContext, Strategy
from .centralized import Centralized
from .fl import FedAvg
from .local import Local
from .sflv1 import SFLv1
from .sflv2 import SFLv2
from .sl import SequentialSL

STRATEGY_CLASSES: dict[str, type[Strategy]] = {
    cls.name: cls for cls in (Centralized, Local, FedAvg, SequentialSL, SFLv1, SFLv2)
}


def make_strategy(name: str, run) -> Strategy:
    """The strategy ``name`` for ``run`` (a :class:`~medseg_kit.federated.run.Run`): built
    from the run's :class:`RoundContext`, and keeping the run as ``strategy.run`` for the
    callers that evaluate or report it."""
    try:
        cls = STRATEGY_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of "
                         f"{', '.join(STRATEGY_CLASSES)}") from None
    strategy = cls(run.round_context())
    strategy.run = run
    return strategy


__all__ = ["STRATEGY_CLASSES", "Centralized", "FedAvg", "Local", "RoundContext", "SFLv1",
           "SFLv2", "SequentialSL", "Strategy", "make_strategy"]
