"""medseg_kit: Split Federated learning (SplitFed) for medical image segmentation.

The public face, for a notebook or a script::

    import medseg_kit as mk

    mk.list_models()                      # the ten networks
    net = mk.create_model("unet")         # a StagedNet
    split = mk.Split(net, *net.default_cut)
    mk.list_datasets()                    # blastocyst, ham10000, kvasir
    history, strategy = mk.train(mk.RunConfig(strategy="sflv2", rounds=3))
    results = mk.compare(["unet"], ["centralized", "local", "sflv2"], ["kvasir"], seeds=2,
                         out="runs/compare")

Importing the package is instant: each name (and each submodule: ``mk.viz``,
``mk.metrics``, ...) is imported the first time it is used. Below it lie the staged
models (``models``), the cut (``split``), the wire (``wire``), the SplitFed protocol
(``protocol``), strategies and the run loop (``federated``), data (``data``), the
comparison matrix (``comparison``), metrics and pictures (``metrics``, ``viz``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

#: public name -> (module, attribute)
_API = {
    "create_model": ("models", "create_model"),
    "list_models": ("models", "list_models"),
    "model_info": ("models", "model_info"),
    "Split": ("split", "Split"),
    "RunConfig": ("federated.config", "RunConfig"),
    "train": ("federated.run", "train"),
    "History": ("federated.run", "History"),
    "load_dataset": ("data", "load_dataset"),
    "list_datasets": ("data", "list_datasets"),
    "compare": ("comparison.runner", "run_matrix"),
}
_SUBMODULES = ("benchmark", "communication", "comparison", "course", "data", "demo",
               "federated", "link", "losses", "metrics", "models", "privacy", "protocol",
               "report", "split", "teaching", "traffic", "units", "viz", "widgets", "wire",
               "zoo")

__all__ = sorted(_API) + ["__version__"]

if TYPE_CHECKING:  # for editors and type checkers; at run time the names load lazily
    from .comparison.runner import run_matrix as compare  # noqa: F401
    from .data import list_datasets, load_dataset  # noqa: F401
    from .federated.config import RunConfig  # noqa: F401
    from .federated.run import History, train  # noqa: F401
    from .models import create_model, list_models, model_info  # noqa: F401
    from .split import Split  # noqa: F401


def __getattr__(name: str):
    if name in _API:
        module, attr = _API[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'medseg_kit' has no attribute {name!r}")
    globals()[name] = value  # the next use is a plain lookup
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API) | set(_SUBMODULES))
