"""Markdown tables of the comparison, the way the MedSegNet10 paper shows it.

Pure functions from numbers (:mod:`~medseg_kit.comparison.stats`'s rows, or the result
dicts themselves) to Markdown text: :func:`metric_table` (the paper's table),
:func:`detail_table`, :func:`ordering_table`, :func:`site_table`, :func:`site_rows_table`,
:func:`wire_table` and the whole ``results.md`` (:func:`results_markdown`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..units import MIB, format_bytes
from .stats import BASELINES, _unique, ordering_checks, summarize_cells

if TYPE_CHECKING:
    from ..federated import RunConfig

METRIC_NAMES = {"iou": "IoU", "dice": "Dice"}


def strategy_label(strategy: str, strategies: Sequence[str]) -> str:
    """``C`` and ``L`` for the baselines; ``S`` for the one other strategy; its name when
    there are several."""
    if strategy in BASELINES:
        return BASELINES[strategy]
    others = [s for s in strategies if s not in BASELINES]
    return "S" if len(others) == 1 else strategy


def _pct(row: Mapping | None, key: str) -> str:
    if row is None or row.get(key) is None or not np.isfinite(row[key]):
        return "–"
    text = f"{100 * row[key]:.1f}"
    if row.get("n_seeds", 1) > 1:
        text += f" ± {100 * row.get(f'{key}_std', 0.0):.1f}"
    return text


def metric_table(summary: Sequence[Mapping], metric: str = "iou") -> str:
    """Markdown: one row per model, for each dataset one column per strategy (C, L, S),
    ``metric`` in % as mean ± std over seeds."""
    datasets = _unique(r["dataset"] for r in summary)
    models = _unique(r["model"] for r in summary)
    strategies = _unique(r["strategy"] for r in summary)
    by = {(r["dataset"], r["model"], r["strategy"]): r for r in summary}
    head = ["model"] + [f"{ds} {strategy_label(s, strategies)}" for ds in datasets
                        for s in strategies]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    for m in models:
        cells = [_pct(by.get((ds, m, s)), metric) for ds in datasets for s in strategies]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def detail_table(summary: Sequence[Mapping]) -> str:
    """Markdown: every (dataset, model, strategy) with Dice, IoU, precision, recall, HD95
    (when computed), MiB per site per round, training seconds and parameters (the last
    columns only when the results carry them: cached teaching runs have no wall time)."""
    has_hd = any("hd95" in r for r in summary)
    extra = [(k, title) for k, title in (("wall_seconds", "wall s"), ("params", "params"))
             if any(k in r for r in summary)]
    head = ["dataset", "model", "strategy", "Dice %", "IoU %", "precision %", "recall %"]
    head += (["HD95 px"] if has_hd else []) + ["MiB / site / round", "train s"]
    head += [title for _, title in extra]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---" + "|---:" * (len(head) - 3) + "|"]
    for r in summary:
        cells = [r["dataset"], r["model"], r["strategy"], _pct(r, "dice"), _pct(r, "iou"),
                 _pct(r, "precision"), _pct(r, "recall")]
        if has_hd:
            hd = r.get("hd95", float("nan"))
            cells.append("–" if not np.isfinite(hd) else f"{hd:.1f}" + (
                f" ± {r.get('hd95_std', 0.0):.1f}" if r["n_seeds"] > 1 else ""))
        cells += [f"{r['bytes_per_site_round'] / MIB:.2f}", f"{r['train_seconds']:.1f}"]
        for k, _ in extra:
            v = r.get(k)
            cells.append("–" if v is None else f"{int(v):,}" if k == "params" else f"{v:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ordering_table(checks: Sequence[Mapping]) -> str:
    """Markdown: the measured gaps and whether C >= S > L holds, per (dataset, model, S)."""
    def gap(row, key):
        v = row[key]
        if v is None:
            return "–"
        return f"{v:+.2f}" + (f" ± {row[f'{key}_std']:.2f}" if row[f"{key}_std"] else "")

    name = METRIC_NAMES.get(checks[0]["metric"], checks[0]["metric"]) if checks else "IoU"
    lines = [f"| dataset | model | S | C − S ({name} pts) | S − L ({name} pts) | C ≥ S > L |",
             "|---|---|---|---:|---:|:---:|"]
    for c in checks:
        mark = {True: "yes", False: "**no**", None: "–"}[c["holds"]]
        lines.append(f"| {c['dataset']} | {c['model']} | {c['strategy']} | "
                     f"{gap(c, 'c_minus_s')} | {gap(c, 's_minus_l')} | {mark} |")
    judged = [c for c in checks if c["holds"] is not None]
    if judged:
        ok = sum(c["holds"] for c in judged)
        lines.append("")
        lines.append(f"The ordering holds in {ok} of {len(judged)} comparisons. (Paper, "
                     "MedSegNet10: C > S > L on all three datasets; C − S ≈ 0.87 pts on "
                     "HAM10000, ≈ 2.01 pts on Kvasir-SEG; S − L ≈ 10.6 pts on Blastocyst.)")
    return "\n".join(lines)


def site_table(results: Sequence[Mapping], metric: str = "iou") -> str:
    """Markdown: per (dataset, model, strategy) the test ``metric`` (%) of each site, mean
    over seeds: how evenly a strategy serves the hospitals."""
    groups: dict[tuple, list] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["model"], r["strategy"]), []).append(r)
    n_sites = max(len(r["site_results"]) for r in results)
    head = ["dataset", "model", "strategy"] + [f"site {i}" for i in range(n_sites)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|---" + "|---:" * n_sites + "|"]
    for (ds, m, s), rows in groups.items():
        cells = []
        for i in range(n_sites):
            vals = [r["site_results"][i][metric] for r in rows if i < len(r["site_results"])]
            cells.append(f"{100 * np.mean(vals):.1f}" if vals else "–")
        lines.append(f"| {ds} | {m} | {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def site_rows_table(rows: Sequence[Mapping], value: str = "dice") -> str:
    """:func:`~medseg_kit.comparison.site_rows` as Markdown: one row per group, one column
    per site. ``value``: ``dice`` (or the metric the rows carry; in %, as mean ± std over
    several runs) or ``n_train``."""
    fields = [k for k in rows[0] if k not in ("site", "n", "n_train")
              and not k.endswith(("_mean", "_std"))] if rows else []
    groups: dict[tuple, dict[int, Mapping]] = {}
    for r in rows:
        groups.setdefault(tuple(r[f] for f in fields), {})[r["site"]] = r
    sites = sorted({r["site"] for r in rows})
    lines = ["| " + " | ".join(fields + [f"site {s}" for s in sites]) + " |",
             "|" + "---|" * len(fields) + "---:|" * len(sites)]
    for key, by_site in groups.items():
        cells = []
        for s in sites:
            r = by_site.get(s)
            if r is None:
                cells.append("–")
            elif value == "n_train":
                cells.append(f"{r['n_train']:.0f}")
            elif r["n"] == 1:
                cells.append(f"{100 * r[f'{value}_mean']:.1f}")
            else:
                cells.append(f"{100 * r[f'{value}_mean']:.1f} ± {100 * r[f'{value}_std']:.1f}")
        lines.append("| " + " | ".join([str(k) for k in key] + cells) + " |")
    return "\n".join(lines)


def wire_table(rows: Sequence[Mapping]) -> str:
    """:func:`~medseg_kit.comparison.wire_rows` as Markdown (bytes in binary units)."""
    lines = ["| run | Dice | up / site / round | down / site / round | labels leave the site |",
             "|---|---:|---:|---:|:---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['dice']:.3f} | {format_bytes(r['bytes_up'])} | "
                     f"{format_bytes(r['bytes_down'])} | "
                     f"{'**yes**' if r['labels_sent'] else 'no'} |")
    return "\n".join(lines)


def results_markdown(results: Sequence[Mapping], base: RunConfig | None = None,
                     seeds: Sequence[int] | None = None) -> str:
    """The whole ``results.md``: settings, IoU and Dice tables, ordering, details."""
    summary = summarize_cells(results)
    strategies = _unique(r["strategy"] for r in summary)
    seeds = list(seeds) if seeds is not None else _unique(r["seed"] for r in results)
    legend = ", ".join(f"{strategy_label(s, strategies)} = {s}" for s in strategies)
    kinds = {r["dataset"]: ("synthetic" if r.get("synthetic") else "real") for r in results}
    lines = ["# Comparison: IoU and Dice per model, dataset and strategy", ""]
    if base is not None:
        lines.append(f"{len(seeds)} seed(s) {seeds} · {base.size} px · {base.rounds} rounds · "
                     f"{base.sites} sites · {base.local_epochs} local epoch(s) · "
                     f"width {base.width or 'teaching'} · batch {base.batch_size} · "
                     f"lr {base.lr} · device {base.device}")
        lines.append("")
    lines += [f"Data: {', '.join(f'{d} ({k})' for d, k in kinds.items())}. {legend}.",
              "Test-set scores in %, mean of per-image scores over the foreground classes; "
              "mean ± sample std over seeds.", "",
              "## IoU (%)", "", metric_table(summary, "iou"), "",
              "## Dice (%)", "", metric_table(summary, "dice"), "",
              "## Ordering C ≥ S > L (IoU)", "", ordering_table(ordering_checks(summary)), "",
              "## Details and cost", "", detail_table(summary), "",
              "## Per site (IoU %)", "", site_table(results, "iou"), ""]
    return "\n".join(lines)
