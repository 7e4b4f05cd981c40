"""The course defaults: the one place the notebooks' ``parameters`` cells and
``binder/postBuild`` read, so Binder prepares exactly what the notebooks train.

Each notebook's ``parameters`` cell takes its values from here (papermill still overrides
them by name). Each *scenario* is the list of runs a notebook trains at its defaults; the
teaching cache (:mod:`medseg_kit.teaching`) trains each run once and keys it by its full
config, so a run shared by two notebooks is trained once.
"""

from __future__ import annotations

from dataclasses import replace

from .federated.config import STRATEGIES, RunConfig

#: Seeds every claim is averaged over (mean ± std).
SEEDS = (0, 1, 2)

#: The teaching run: small enough for Binder (1 CPU, 2 GB), long enough to learn.
#: Batch 4 gives each site's part twice the steps of batch 8 at the same cost per image;
#: 8 calibration images per site set the BatchNorm statistics that are evaluated
#: (:mod:`medseg_kit.federated.batchnorm`).
BASE = RunConfig(model="unet", dataset="kvasir", n_images=120, size=64, width=8, sites=3,
                 rounds=6, local_epochs=1, batch_size=4, lr=3e-3, bn_calibration=8,
                 device="cpu")


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
    return runs(STRATEGIES)


def non_iid(partitions=("iid", "quantity", "label", "acquisition"),
            strategies=("local", "sflv2"), seeds=SEEDS, concentration: float = 0.5,
            **overrides) -> list[RunConfig]:
    """Notebook 05: local and SplitFed under each partition scheme, and centralized on IID
    sites as the reference.

    Pooling the data makes the partition nearly irrelevant to ``centralized``: under
    ``quantity`` and ``label`` it trains on the very same images in the same order (only
    the per-site sample that calibrates BatchNorm differs), so it is trained once, on IID
    sites (runs that 00 and 04 share). ``concentration`` (Dirichlet; smaller is more
    skewed) is set only for the schemes that read it, so the IID runs stay those of 00
    and 04.
    """
    out = runs(("centralized",), seeds, **overrides)
    for p in partitions:
        skew = {"concentration": concentration} if p in ("quantity", "label") else {}
        out += runs(strategies, seeds, partition=p, **skew, **overrides)
    return out


def strategy_extras(dropout: float = 0.3, packet_loss: float = 0.1) -> list[RunConfig]:
    """Notebook 04's single-seed runs beside the six strategies: the vanilla split (labels
    sent), site dropout and packet loss (all ``sflv2``, first seed)."""
    seed = SEEDS[0]
    return [config(strategy="sflv2", split="vanilla", seed=seed),
            config(strategy="sflv2", site_dropout=dropout, seed=seed),
            config(strategy="sflv2", loss_up=packet_loss, loss_down=packet_loss, seed=seed)]


def evaluation(models=("unet",), datasets=("kvasir", "ham10000", "blastocyst"),
               strategies=("centralized", "local", "sflv2"), seeds=(0,)) -> list[RunConfig]:
    """Notebook 06: C, L and S for each model on each dataset (Kvasir's are 00's runs)."""
    return [config(model=m, dataset=d, strategy=s, seed=k)
            for d in datasets for m in models for s in strategies for k in seeds]


def communication(codecs=("none", "fp16", "bf16", "int8", "int8c", "gradient=topk:0.1",
                          "activation=fp16,gradient=topk:0.1,model=int8", "model=int8"),
                  seed: int = SEEDS[0], **overrides) -> list[RunConfig]:
    """Notebook 08 (and ``bench/codecs.py``): ``sflv2`` once per wire codec spec, first
    seed (the ``"none"`` run is 00's)."""
    return [config(strategy="sflv2", codec=c, seed=seed, **overrides) for c in codecs]


SCENARIOS = {"00_quickstart": quickstart, "04_training_strategies": strategies,
             "04_training_strategies extras": strategy_extras,
             "05_non_iid_sites": non_iid, "06_evaluation_and_comparison": evaluation,
             "08_communication": communication}


#: Synthetic sets a notebook loads itself, outside the teaching runs: (dataset, images,
#: seed). 01 shows each dataset; the teaching runs synthesize their own data.
SHOWN_DATA = {"01_data_and_sites": [(name, 24, 0)
                                    for name in ("ham10000", "kvasir", "blastocyst")],
              # the honest-but-curious server's own images (notebook 07's attack)
              "07_privacy": [("kvasir", 96, 1000)]}


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
