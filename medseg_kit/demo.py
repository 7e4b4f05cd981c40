"""The demo: synthetic polyps, three sites, centralized vs local vs SplitFed (sflv2).

``make demo`` and ``medseg-kit demo`` call :func:`run_demo`, which trains the three
strategies on the same data and sites, prints a results table and writes under ``out``:
``results.json``, ``results.md``, ``learning_curves.png``, ``predictions.png`` and
``split.png``, plus one run folder per strategy (history and checkpoint).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt

from . import viz
from .federated import RunConfig, train
from .federated.run import resolve_data

DEMO_STRATEGIES = ("centralized", "local", "sflv2")


def results_table(results: list[dict]) -> str:
    """A Markdown table: strategy, Dice, IoU, MB per site per round, seconds."""
    lines = ["| strategy | Dice | IoU | MB / site / round | seconds |",
             "|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['strategy']} | {r['dice']:.3f} | {r['iou']:.3f} | "
                     f"{r['bytes_per_site_round'] / 1e6:.2f} | {r['total_seconds']:.1f} |")
    return "\n".join(lines)


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


def run_demo(out: str | Path = "outputs", config: RunConfig | None = None,
             strategies=DEMO_STRATEGIES, progress: bool = True) -> list[dict]:
    """Train each strategy on the same synthetic sites; write figures; return the results."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = config or RunConfig(rounds=12, size=128, n_images=200, sites=3)
    histories, trained, results = run_strategies(base, strategies, out=out, progress=progress)
    viz.plot_curves(histories).savefig(out / "learning_curves.png", dpi=120)
    viz.plot_predictions(*predictions(trained)).savefig(out / "predictions.png", dpi=120)
    split_run = next(s.run for s in trained.values())
    viz.plot_split(split_run.split, base.size).savefig(out / "split.png", dpi=120)
    plt.close("all")
    (out / "results.md").write_text(results_table(results) + "\n")
    (out / "results.json").write_text(json.dumps(results, indent=1))
    return results
