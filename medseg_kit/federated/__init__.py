"""Sites, strategies, aggregation, the run loop and checkpoints."""

from .aggregation import fedavg
from .config import STRATEGIES, RunConfig
from .run import GLOBAL, History, Run, Site, train
from .strategies import RoundContext

__all__ = ["GLOBAL", "STRATEGIES", "History", "RoundContext", "Run", "RunConfig", "Site",
           "fedavg", "train"]
