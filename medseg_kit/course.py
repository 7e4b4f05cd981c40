"""The course defaults: the one place the notebooks' ``parameters`` cells and
``binder/postBuild`` read, so Binder prepares exactly what the notebooks train.

Each notebook's ``parameters`` cell takes its values from here (papermill still overrides
them by name). Each *scenario* is the list of runs a notebook trains at its defaults; the
teaching cache (:mod:`medseg_kit.teaching`) trains each run once and keys it by its full
config, so a run shared by two notebooks is trained once.
"""

from __future__ import annotations

from dataclasses import replace

from .federated.config import RunConfig

#: Seeds every claim is averaged over (mean ± std).
SEEDS = (0, 1, 2)

#: The teaching run: small enough for Binder (1 CPU, 2 GB), long enough to learn.
BASE = RunConfig(model="unet", dataset="kvasir", n_images=120, size=64, width=8, sites=3,
                 rounds=8, local_epochs=1, batch_size=8, lr=3e-3, device="cpu")


def config(**overrides) -> RunConfig:
    """:data:`BASE` with some fields replaced."""
    return replace(BASE, **overrides)


def runs(strategies, seeds=SEEDS, **overrides) -> list[RunConfig]:
    """One config per (strategy, seed), all else from :func:`config`."""
    return [config(strategy=s, seed=seed, **overrides) for s in strategies for seed in seeds]


# ------------------------------------------------------------------ scenarios
def quickstart() -> list[RunConfig]:
    """Notebook 00: centralized, local and SplitFed on IID sites."""
    return runs(("centralized", "local", "sflv2"))


def strategies() -> list[RunConfig]:
    """Notebook 04: all six strategies on IID sites (shares 00's runs)."""
    return runs(("centralized", "local", "fl", "sl", "sflv1", "sflv2"))


def non_iid() -> list[RunConfig]:
    """Notebook 05: local and SplitFed under each partition scheme."""
    return [c for p in ("iid", "quantity", "label", "acquisition")
            for c in runs(("centralized", "local", "sflv2"), partition=p)]


SCENARIOS = {"00_quickstart": quickstart, "04_training_strategies": strategies,
             "05_non_iid_sites": non_iid}


def all_runs() -> list[RunConfig]:
    """Every run the notebooks' defaults train, each once (what ``postBuild`` prepares)."""
    seen, out = set(), []
    for make in SCENARIOS.values():
        for c in make():
            key = repr(c.to_dict())
            if key not in seen:
                seen.add(key)
                out.append(c)
    return out
