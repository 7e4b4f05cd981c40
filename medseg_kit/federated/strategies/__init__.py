"""Learning schemes, one module each, all driven by the same run loop."""

from __future__ import annotations

from .base import Strategy
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
    try:
        return STRATEGY_CLASSES[name](run)
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; choose one of "
                         f"{', '.join(STRATEGY_CLASSES)}") from None
