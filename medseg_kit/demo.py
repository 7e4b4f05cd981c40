"""The demo: synthetic polyps, simulated sites, centralized vs local vs SplitFed (sflv2),
each trained once per seed and reported as mean ± std over the seeds.

``make demo`` and ``medseg-kit demo`` call :func:`run_demo`, which trains every strategy on
the same data and sites for each seed (the seed draws the synthetic images, the train/test
split, the sites and the initial weights), prints a results table and writes under
``out``: ``results.json``, ``results.md``, ``learning_curves.png``, ``predictions.png`` and
``split.png``, plus one run folder per strategy and seed (history and checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from . import course, viz
from .federated import RunConfig, train
from .federated.run import resolve_data
from .split import Split, resolve_cut
from .units import MIB

DEMO_STRATEGIES = ("centralized", "local", "sflv2")
DEMO_SEEDS = (0, 1, 2)

#: The demo's setting: the course's teaching run (:data:`medseg_kit.course.BASE`: a small
#: UNet at 64 px, 6 rounds) on three hospitals of unequal size (quantity skew, Dirichlet
#: 0.5), the setting notebook 05 shows beside the others.
DEMO = replace(course.BASE, partition="quantity", concentration=0.5, device="auto")


def run_strategies(config: RunConfig, strategies=DEMO_STRATEGIES, data=None,
                   out: str | Path | None = None, progress: bool = True):
    """Train ``config`` once per strategy on the same data and sites.

    Returns ``(histories, trained, results)``: ``{strategy: History}``,
    ``{strategy: Strategy}`` (to predict with) and the list of ``History.final()`` rows.
    """
    data = resolve_data(config, progress) if data is None else data
    histories, trained, results = {}, {}, []
    for name in strategies:
        run_out = Path(out) / name if out is not None else None
        histories[name], trained[name] = train(replace(config, strategy=name), run_out,
                                               data=data, progress=progress)
        results.append(histories[name].final())
    return histories, trained, results


def predictions(trained: dict, site: int = 0, n: int = 4):
    """Test images, truths and each strategy's predicted masks for ``site``."""
    run = next(iter(trained.values())).run
    idx = run.sites[site].test_idx[:n]
    preds = {k: s.run.predict(s.model_for(site), idx).numpy() for k, s in trained.items()}
    return run.test.images[idx], run.test.masks[idx], preds


def _a_split(trained: dict, config: RunConfig) -> Split:
    """The cut a splitting strategy of the demo used, or the one it would use."""
    for s in trained.values():
        if s.run.split is not None:
            return s.run.split
    net = next(iter(trained.values())).run.net
    return Split(net, *resolve_cut(net, config.cut, config.split))


def summarize(results: list[dict], strategies=DEMO_STRATEGIES) -> list[dict]:
    """Per strategy, over the seeds: Dice and IoU mean and sample std (``ddof=1``), the
    per-seed Dice, MiB per site per round and seconds per run (means)."""
    rows = []
    for name in strategies:
        mine = sorted((r for r in results if r["strategy"] == name), key=lambda r: r["seed"])
        if not mine:
            continue
        dice = np.array([r["dice"] for r in mine])
        iou = np.array([r["iou"] for r in mine])
        std = (lambda a: float(a.std(ddof=1)) if len(a) > 1 else 0.0)  # noqa: E731
        rows.append({"strategy": name, "n": len(mine), "seeds": [r["seed"] for r in mine],
                     "dice_mean": float(dice.mean()), "dice_std": std(dice),
                     "iou_mean": float(iou.mean()), "iou_std": std(iou),
                     "dice_values": dice.tolist(),
                     "mib_per_site_round": float(np.mean([r["bytes_per_site_round"]
                                                          for r in mine])) / MIB,
                     "seconds": float(np.mean([r["total_seconds"] for r in mine]))})
    return rows


def results_table(rows: list[dict]) -> str:
    """A Markdown table of :func:`summarize`'s rows (bytes in MiB)."""
    lines = ["| strategy | Dice (mean ± std) | IoU (mean ± std) | Dice per seed | "
             "MiB / site / round | seconds / run |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        per_seed = " / ".join(f"{d:.3f}" for d in r["dice_values"])
        lines.append(f"| {r['strategy']} | {r['dice_mean']:.3f} ± {r['dice_std']:.3f} | "
                     f"{r['iou_mean']:.3f} ± {r['iou_std']:.3f} | {per_seed} | "
                     f"{r['mib_per_site_round']:.1f} | {r['seconds']:.1f} |")
    return "\n".join(lines)


def margins(results: list[dict]) -> dict:
    """Per seed, ``centralized − sflv2`` and ``sflv2 − local`` (final Dice), and their
    worst case over the seeds: the numbers behind the demo's lesson."""
    by = {(r["strategy"], r["seed"]): r["dice"] for r in results}
    seeds = sorted({s for _, s in by})
    out = {"seeds": seeds}
    if all(("centralized", s) in by and ("sflv2", s) in by for s in seeds):
        gap = [by["centralized", s] - by["sflv2", s] for s in seeds]
        out.update(centralized_minus_sflv2=gap, worst_gap=max(gap))
    if all(("local", s) in by and ("sflv2", s) in by for s in seeds):
        lead = [by["sflv2", s] - by["local", s] for s in seeds]
        out.update(sflv2_minus_local=lead, worst_lead=min(lead))
    return out


def lesson(m: dict) -> str:
    """The sentences the margins support, with their numbers."""
    lines = []
    if "worst_lead" in m:
        verdict = "ahead of" if m["worst_lead"] > 0 else "not ahead of"
        lines.append(f"sflv2 is {verdict} local in every seed; sflv2 − local: "
                     + ", ".join(f"{v:+.3f}" for v in m["sflv2_minus_local"])
                     + f" Dice (seeds {m['seeds']}).")
    if "worst_gap" in m:
        lines.append("centralized − sflv2: " + ", ".join(f"{v:+.3f}" for v in
                                                          m["centralized_minus_sflv2"])
                     + f" Dice (largest gap {m['worst_gap']:.3f}).")
    return "\n".join(lines)


def run_demo(out: str | Path = "outputs", config: RunConfig | None = None,
             strategies=DEMO_STRATEGIES, seeds=DEMO_SEEDS, progress: bool = True) -> dict:
    """Train each strategy for each seed; write figures and results; return them.

    Returns a dict: ``setting`` (the config, seed aside), ``runs`` (one
    :meth:`History.final` row per strategy and seed, with its ``seed``), ``summary``
    (:func:`summarize`) and ``margins`` (:func:`margins`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = config or DEMO
    results, first = [], None
    for seed in seeds:
        c = replace(base, seed=seed)
        histories, trained, rows = run_strategies(c, strategies, out=out / f"seed{seed}",
                                                  progress=progress)
        results += [{**r, "seed": seed} for r in rows]
        if first is None:
            first = histories, trained
    histories, trained = first
    fig = viz.plot_curves(histories)
    fig.suptitle(f"seed {seeds[0]}", fontsize=9)
    fig.savefig(out / "learning_curves.png", dpi=120)
    viz.plot_predictions(*predictions(trained)).savefig(out / "predictions.png", dpi=120)
    viz.plot_split(_a_split(trained, base), base.size).savefig(out / "split.png", dpi=120)
    plt.close("all")
    summary, m = summarize(results, strategies), margins(results)
    setting = {k: v for k, v in base.to_dict().items() if k != "seed"}
    report = {"setting": setting, "seeds": list(seeds), "runs": results, "summary": summary,
              "margins": m}
    (out / "results.md").write_text(
        f"{describe(base, seeds)}\n\n{results_table(summary)}\n\n{lesson(m)}\n")
    (out / "results.json").write_text(json.dumps(report, indent=1, default=str))
    return report


def describe(c: RunConfig, seeds) -> str:
    """One sentence naming the demo's setting."""
    skew = ("IID sites" if c.partition == "iid" else
            f"{c.partition} skew (Dirichlet concentration {c.concentration})")
    return (f"{c.model} (width {c.width}) on {c.n_images} synthetic {c.dataset} images at "
            f"{c.size} px, "
            f"{c.sites} sites, {skew}, {c.rounds} rounds of {c.local_epochs} local epoch(s); "
            f"mean ± std over seeds {list(seeds)}.")
