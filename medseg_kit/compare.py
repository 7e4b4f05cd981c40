"""The comparison matrix: every (dataset, model, strategy, seed) cell trained, evaluated
once at the end, and tabulated the way the MedSegNet10 paper does.

    from medseg_kit.compare import run_matrix
    from medseg_kit.federated import RunConfig

    results = run_matrix(["unet", "segnet"], ["centralized", "local", "sflv2"],
                         ["kvasir", "ham10000", "blastocyst"], seeds=2, out="runs/compare",
                         base_config=RunConfig(size=64, rounds=8, n_images=80, device="cpu"))

or ``medseg-kit compare --models unet,segnet --datasets kvasir,ham10000,blastocyst
--seeds 2 --out runs/compare`` (add ``--size 256 --width paper --rounds 50 --real`` on a
GPU for the paper's setting).

What ends up in ``out``:

* ``<dataset>-<model>-<strategy>-seed<k>/``: one folder per cell: the run's
  ``history.json`` and ``checkpoint.pt`` (written every round by the run loop),
  ``worst_cases.npz`` (the lowest-Dice test images with truth and prediction) and, written
  last and atomically (temporary file + ``os.replace``), ``result.json``. A cell is
  *finished* when its ``result.json`` exists; running the matrix again skips finished
  cells and resumes interrupted ones from their last checkpoint, so a matrix can also be
  grown (more models, datasets or seeds: only the new cells train). A finished cell whose
  configuration differs from the one asked for (other than the device) is an error.
* ``results.csv`` (one row per cell), ``results.json`` (cells, the mean ± std summary and
  the ordering checks) and ``results.md`` (the paper-style tables), rewritten after every
  cell.

Evaluation (one pass, after the last round): every test image is predicted once, by the
model that serves the site holding it (:meth:`Strategy.model_for`), and scored with
:func:`medseg_kit.metrics.evaluate_predictions`: Dice, IoU, precision and recall are means
over test images of per-image scores (foreground classes; see :mod:`medseg_kit.metrics`
for the conventions), HD95 (opt-in) in pixels. For ``local`` this is the image-weighted
mean over the sites' own models.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from . import metrics
from ._atomic import atomic_write
from .data import SegData
from .federated import RunConfig, train
from .federated.run import resolve_data
from .units import MIB, format_bytes

RESULT = "result.json"
WORST = "worst_cases.npz"
BASELINES = {"centralized": "C", "local": "L"}
METRIC_NAMES = {"iou": "IoU", "dice": "Dice"}
# what a cell's config may differ in and still count as the same experiment
_IGNORED_FOR_MATCH = ("device",)


# ------------------------------------------------------------------- the cells
def parse_seeds(seeds: int | str | Iterable[int]) -> list[int]:
    """``2`` or ``"2"``: seeds 0 and 1; ``"0,3,7"`` or ``[0, 3, 7]``: those seeds."""
    if isinstance(seeds, str):
        seeds = int(seeds) if "," not in seeds else [int(s) for s in seeds.split(",") if s]
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be a count >= 1 or a list of seeds; got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out or len(set(out)) != len(out):
        raise ValueError(f"seeds must be distinct and not empty; got {out}")
    return out


def cell_name(dataset: str, model: str, strategy: str, seed: int) -> str:
    return f"{dataset}-{model}-{strategy}-seed{seed}"


def _match_dict(config: RunConfig | Mapping) -> dict:
    d = config.to_dict() if isinstance(config, RunConfig) else dict(config)
    d = json.loads(json.dumps(d))  # tuples -> lists, int keys -> str: as read back
    for k in _IGNORED_FOR_MATCH:
        d.pop(k, None)
    return d


def finished_result(folder: str | Path, config: RunConfig) -> dict | None:
    """The cell's result when ``folder`` holds a finished run of ``config``; None when it
    holds none (or only an interrupted one). A finished run of another config is an error:
    results must never be mixed silently."""
    path = Path(folder) / RESULT
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not result.get("complete"):
        return None
    saved, now = _match_dict(result.get("config", {})), _match_dict(config)
    if saved != now:
        diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
        detail = ", ".join(f"{k}: {saved.get(k)!r} there, {now.get(k)!r} asked" for k in diff)
        raise ValueError(f"{path} is a finished run of another configuration ({detail}); "
                         "choose another output folder or delete that cell's folder")
    return result


def score_predictions(pred: np.ndarray, target: np.ndarray, site_of: np.ndarray,
                      class_names: Sequence[str], hd95: bool = False) -> dict:
    """Score class-id predictions (N x H x W) against targets, pooled and per site.

    Returns a dict with ``metrics`` (:func:`~medseg_kit.metrics.evaluate_predictions`'s
    keys), ``sites`` (the same per site, plus ``site``, in site order) and per image
    ``dice`` and ``iou`` (arrays, the mean over the foreground classes).
    """
    pred, target = np.asarray(pred), np.asarray(target)
    site_of = np.asarray(site_of)
    num_classes = len(class_names)
    counts = metrics.overlap_counts(torch.from_numpy(pred.astype(np.int64)),
                                    torch.from_numpy(target.astype(np.int64)),
                                    num_classes).numpy()
    hd = metrics.hd95_per_image(pred, target, num_classes) if hd95 else None

    def score(sel) -> dict:
        out = metrics.summarize(counts[sel], class_names=class_names)
        out["n_images"] = int(sel.sum())
        if hd is not None:
            out.update(metrics.summarize_hd95(hd[sel], class_names))
        return out

    dice, iou = metrics.image_scores(counts)
    return {"metrics": score(np.ones(len(pred), bool)),
            "sites": [{"site": int(s), **score(site_of == s)} for s in np.unique(site_of)],
            "dice": dice, "iou": iou}


def evaluate_strategy(strategy, hd95: bool = False) -> dict:
    """Score the trained ``strategy`` on every test image (each by its site's model).

    Returns :func:`score_predictions`'s dict plus, per test image, ``index`` (into
    ``run.test``), ``site`` and the class-id ``pred`` maps (arrays).
    """
    run = strategy.run
    index, site_of, pred = run.predict_sites(strategy)
    target = run.test.masks[index]
    scored = score_predictions(pred, target, site_of, run.test.class_names, hd95)
    return {**scored, "index": index, "site": site_of, "pred": pred}


def evaluate_run(run, hd95: bool = False) -> dict:
    """The result of a cached teaching run (:class:`medseg_kit.teaching.TeachingRun`) in
    the form :func:`run_cell` writes, so :func:`summarize_cells`, the tables and the
    ordering checks work on it. Nothing is trained: the run's stored predictions are
    scored (each test image by the model its site uses).

    Example:
        >>> results = [evaluate_run(r, hd95=True) for r in teaching.run_many(configs)]
        >>> print(metric_table(summarize_cells(results), "dice"))  # doctest: +SKIP
    """
    c = run.config
    names = list(run.class_names)
    scored = score_predictions(run.predictions, run.truths, run.sites, names, hd95)
    final = run.history.final()
    return {"cell": cell_name(c.dataset, c.model, c.strategy, c.seed), "dataset": c.dataset,
            "model": c.model, "strategy": c.strategy, "seed": c.seed, **scored["metrics"],
            "train_loss": final.get("train_loss", float("nan")),
            "bytes_per_site_round": final.get("bytes_per_site_round", 0.0),
            "train_seconds": final.get("total_seconds", float("nan")),
            "rounds": c.rounds, "sites": c.sites, "size": c.size,
            "synthetic": c.data_root is None, "class_names": names,
            "site_results": scored["sites"],
            "images": [{"id": str(i), "site": int(s), "dice": float(d), "iou": float(u)}
                       for i, (s, d, u) in enumerate(zip(run.sites, scored["dice"],
                                                         scored["iou"]))],
            "config": c.to_dict(), "complete": True}


def worst_cases(run, n: int = 4, result: Mapping | None = None) -> dict[str, np.ndarray]:
    """The ``n`` lowest-Dice test images of a teaching run, worst first, in the form of
    :func:`load_worst_cases` (images, truths, preds, dice, iou, sites, ids, class_names).
    ``result``: the run's :func:`evaluate_run` dict (computed when not given)."""
    result = result if result is not None else evaluate_run(run)
    dice = np.array([im["dice"] for im in result["images"]])
    iou = np.array([im["iou"] for im in result["images"]])
    order = np.argsort(dice, kind="stable")[:n]
    return {"images": run.images[order], "truths": run.truths[order],
            "preds": run.predictions[order], "dice": dice[order], "iou": iou[order],
            "sites": np.asarray(run.sites)[order], "ids": order.astype(str),
            "class_names": np.array(run.class_names)}


def run_cell(config: RunConfig, folder: str | Path, data: SegData, hd95: bool = False,
             worst: int = 6) -> dict:
    """Train one cell (resuming from its checkpoint when one is there), evaluate it, write
    ``worst_cases.npz`` and then ``result.json`` (atomically); return the result."""
    folder = Path(folder)
    t0 = time.perf_counter()
    resume = (folder / "checkpoint.pt").is_file()
    history, strategy = train(config, folder, data=data, progress=False, resume=resume)
    ev = evaluate_strategy(strategy, hd95=hd95)
    run = strategy.run
    final = history.final()
    result = {
        "cell": folder.name, "dataset": config.dataset, "model": config.model,
        "strategy": config.strategy, "seed": config.seed,
        **ev["metrics"],
        "train_loss": final.get("train_loss", float("nan")),
        "bytes_per_site_round": final.get("bytes_per_site_round", 0.0),
        "train_seconds": final.get("total_seconds", float("nan")),
        "wall_seconds": time.perf_counter() - t0,
        "resumed": resume,
        "params": sum(p.numel() for p in run.net.parameters()),
        "rounds": config.rounds, "sites": config.sites, "size": config.size,
        "synthetic": bool(data.synthetic), "device": str(run.device),
        "class_names": list(run.test.class_names),
        "site_results": ev["sites"],
        "images": [{"id": str(run.test.meta[i].get("id", i)), "site": int(s),
                    "dice": float(d), "iou": float(u)}
                   for i, s, d, u in zip(ev["index"], ev["site"], ev["dice"], ev["iou"])],
        "config": config.to_dict(),
        "complete": True,
    }
    if worst > 0:
        order = np.argsort(ev["dice"], kind="stable")[:worst]
        idx = ev["index"][order]
        savez_atomic(folder / WORST, images=run.test.images[idx], truths=run.test.masks[idx],
                      preds=ev["pred"][order].astype(np.uint8), dice=ev["dice"][order],
                      iou=ev["iou"][order], sites=ev["site"][order],
                      ids=np.array([str(run.test.meta[i].get("id", i)) for i in idx]),
                      class_names=np.array(run.test.class_names))
    atomic_write(folder / RESULT, json.dumps(result, indent=1, default=_json_default))
    return json.loads(json.dumps(result, default=_json_default))


def run_matrix(models: Sequence[str], strategies: Sequence[str], datasets: Sequence[str],
               seeds: int | Iterable[int], out: str | Path,
               base_config: RunConfig | None = None, progress: bool = True, *,
               hd95: bool = False, worst: int = 6,
               data_roots: Mapping[str, str | Path] | None = None,
               load_data: Callable[[RunConfig], SegData] | None = None) -> list[dict]:
    """Train and evaluate every (dataset, model, strategy, seed) cell; write the tables.

    Args:
        models, strategies, datasets: names (see ``list_models()``, ``STRATEGIES``,
            ``medseg_kit.data.LOADERS``).
        seeds: a count (``2``: seeds 0 and 1) or the seeds themselves.
        out: the matrix folder (see the module docstring for its layout).
        base_config: everything else (size, rounds, sites, width, device ...); its model,
            strategy, dataset and seed are replaced per cell. Default: ``RunConfig()``.
        progress: one progress bar over the whole matrix.
        hd95: also compute HD95 at the final evaluation of each cell.
        worst: how many lowest-Dice test images each cell keeps in ``worst_cases.npz``.
        data_roots: ``{dataset: folder}`` of real data; datasets not named use
            ``base_config.data_root`` when only one dataset is asked for, else synthetic data.
        load_data: ``config -> SegData``, called once per (seed, dataset) that has a cell to
            train; default :func:`~medseg_kit.federated.run.resolve_data`.

    Returns:
        One result dict per cell, in matrix order (seed, dataset, model, strategy).
    """
    base = base_config or RunConfig()
    seeds = parse_seeds(seeds)
    for what, names in (("models", models), ("strategies", strategies),
                        ("datasets", datasets)):
        if not names or len(set(names)) != len(names):
            raise ValueError(f"{what} must be distinct and not empty; got {list(names)}")
    _check_names(models, datasets)
    roots = dict(data_roots or {})
    if base.data_root is not None and len(datasets) > 1:
        raise ValueError(f"base_config.data_root {base.data_root!r} is one folder for "
                         f"{len(datasets)} datasets; give data_roots={{dataset: folder}}")
    load = load_data or (lambda c: resolve_data(c, progress=False))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plan = [(seed, ds, m, s) for seed in seeds for ds in datasets for m in models
            for s in strategies]
    configs = {cell: replace(base, dataset=cell[1], model=cell[2], strategy=cell[3],
                             seed=cell[0], data_root=str(roots[cell[1]]) if cell[1] in roots
                             else base.data_root) for cell in plan}
    results: dict[tuple, dict] = {}
    for cell, cfg in configs.items():  # check every finished cell before training any
        done = finished_result(out / cell_name(cell[1], cell[2], cell[3], cell[0]), cfg)
        if done is not None:
            results[cell] = done
    bar = tqdm(total=len(plan), desc="compare", disable=not progress)
    bar.update(len(results))
    data_key, data = None, None
    for cell in plan:
        if cell in results:
            continue
        seed, ds, m, s = cell
        name = cell_name(ds, m, s, seed)
        bar.set_postfix_str(name)
        if data_key != (seed, ds):
            data_key, data = None, None  # free the previous dataset first
            data, data_key = load(configs[cell]), (seed, ds)
        results[cell] = run_cell(configs[cell], out / name, data, hd95=hd95, worst=worst)
        bar.update(1)
        write_results(out, [results[c] for c in plan if c in results], base, seeds)
    bar.close()
    ordered = [results[c] for c in plan]
    write_results(out, ordered, base, seeds)
    return ordered


def _check_names(models: Sequence[str], datasets: Sequence[str]) -> None:
    from .data import LOADERS
    from .models import list_models

    known = list_models()
    bad = [m for m in models if m not in known]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; available: {', '.join(known)}")
    bad = [d for d in datasets if d not in LOADERS]
    if bad:
        raise ValueError(f"unknown dataset(s) {bad}; available: {', '.join(sorted(LOADERS))}")


# ------------------------------------------------------- teaching-run groups
def _group(runs, by: str | Sequence[str]) -> dict[tuple, list]:
    names = (by,) if isinstance(by, str) else tuple(by)
    groups: dict[tuple, list] = {}
    for r in runs:
        groups.setdefault(tuple(getattr(r.config, n) for n in names), []).append(r)
    return groups


def _label(key: tuple) -> str:
    return " · ".join(str(k) for k in key)


def mean_curves(runs, by: str | Sequence[str] = "strategy",
                metrics: Sequence[str] = ("train_loss", "dice")) -> dict[str, list[dict]]:
    """Per group of runs (seeds, usually), the pooled history rows averaged round by round.

    Returns ``{label: rows}`` with, per round, ``round``, each metric's seed mean under its
    own name and its sample standard deviation under ``<metric>_std``, and ``n`` (runs that
    reached that round): what :func:`medseg_kit.viz.plot_curves` draws.
    """
    out = {}
    for key, members in _group(runs, by).items():
        per_run = [r.history.rows() for r in members]
        rounds = sorted({row["round"] for rows in per_run for row in rows})
        rows = []
        for rd in rounds:
            got = [row for rows in per_run for row in rows if row["round"] == rd]
            row = {"round": rd, "n": len(got)}
            for m in metrics:
                vals = np.array([g[m] for g in got], dtype=float)
                row[m] = float(vals.mean())
                row[f"{m}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
            rows.append(row)
        out[_label(key)] = rows
    return out


def paired_gaps(runs, hi: str, lo: str, by: str | Sequence[str] = "partition",
                metric: str = "dice") -> list[dict]:
    """``hi`` minus ``lo`` (two strategies) in points (``metric`` x 100) of the final pooled
    ``metric``, paired by seed (the same seed deals the same sites to both), per group.

    Returns one row per group: the group's field(s), ``hi``, ``lo``, ``seeds``,
    ``gap_values`` (per seed), ``gap_mean``, ``gap_std`` (sample std; 0 for one seed),
    ``gap_min``.
    """
    names = (by,) if isinstance(by, str) else tuple(by)
    rows = []
    for key, members in _group(runs, names).items():
        final = {(r.config.strategy, r.config.seed): r.final()[metric] for r in members}
        seeds = sorted({s for (st, s) in final if st == hi} & {s for (st, s) in final
                                                              if st == lo})
        if not seeds:
            continue
        gaps = np.array([100 * (final[(hi, s)] - final[(lo, s)]) for s in seeds])
        rows.append({**dict(zip(names, key)), "hi": hi, "lo": lo, "seeds": seeds,
                     "gap_values": gaps.tolist(), "gap_mean": float(gaps.mean()),
                     "gap_std": float(gaps.std(ddof=1)) if len(gaps) > 1 else 0.0,
                     "gap_min": float(gaps.min())})
    return rows


def site_rows(runs, by: str | Sequence[str] = ("partition", "strategy"),
              metric: str = "dice") -> list[dict]:
    """Each site's final ``metric`` (its own test images, judged by the model it uses),
    mean and sample std over the runs of each group, with the site's training images.

    Returns one row per (group, site): the group's field(s), ``site``, ``n`` (runs),
    ``<metric>_mean``, ``<metric>_std``, ``n_train`` (mean over the runs).
    """
    names = (by,) if isinstance(by, str) else tuple(by)
    rows = []
    for key, members in _group(runs, names).items():
        last = [r.history.rows()[-1]["round"] for r in members]
        per_site: dict[int, list[dict]] = {}
        for r, rd in zip(members, last):
            for rec in r.history.records:
                if rec["round"] == rd and rec["site"] != "all":
                    per_site.setdefault(int(rec["site"]), []).append(rec)
        for site, recs in sorted(per_site.items()):
            vals = np.array([x[metric] for x in recs], dtype=float)
            rows.append({**dict(zip(names, key)), "site": site, "n": len(vals),
                         f"{metric}_mean": float(vals.mean()),
                         f"{metric}_std": float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                         "n_train": float(np.mean([x["n_train"] for x in recs]))})
    return rows


def site_rows_table(rows: Sequence[Mapping], value: str = "dice") -> str:
    """:func:`site_rows` as Markdown: one row per group, one column per site. ``value``:
    ``dice`` (or the metric the rows carry; in %, as mean ± std over several runs) or
    ``n_train``."""
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


def wire_rows(runs: Mapping[str, object]) -> list[dict]:
    """Per labelled teaching run (``{label: run}``): its final pooled Dice and the bytes a
    site sends up and receives down per round (mean over the site rows of every round), and
    whether the labels left the sites (a vanilla split of a split strategy)."""
    rows = []
    for label, r in runs.items():
        recs = [x for x in r.history.records if x["site"] != "all"]
        c = r.config
        rows.append({"run": label, "dice": float(r.final()["dice"]),
                     "bytes_up": float(np.mean([x["bytes_up"] for x in recs])),
                     "bytes_down": float(np.mean([x["bytes_down"] for x in recs])),
                     "labels_sent": c.split == "vanilla" and c.strategy in ("sl", "sflv1",
                                                                            "sflv2")})
    return rows


def wire_table(rows: Sequence[Mapping]) -> str:
    """:func:`wire_rows` as Markdown (bytes in binary units)."""
    lines = ["| run | Dice | up / site / round | down / site / round | labels leave the site |",
             "|---|---:|---:|---:|:---:|"]
    for r in rows:
        lines.append(f"| {r['run']} | {r['dice']:.3f} | {format_bytes(r['bytes_up'])} | "
                     f"{format_bytes(r['bytes_down'])} | "
                     f"{'**yes**' if r['labels_sent'] else 'no'} |")
    return "\n".join(lines)


# --------------------------------------------------------------- aggregation
def flat_row(result: Mapping) -> dict:
    """A result without its nested parts (config, per-site, per-image): one CSV row."""
    return {k: v for k, v in result.items() if not isinstance(v, (dict, list))}


def summarize_cells(results: Sequence[Mapping]) -> list[dict]:
    """Mean and sample standard deviation (ddof 1; 0 for one seed) over seeds of every
    number, per (dataset, model, strategy): keys ``<metric>`` and ``<metric>_std``."""
    groups: dict[tuple, list[Mapping]] = {}
    for r in results:
        groups.setdefault((r["dataset"], r["model"], r["strategy"]), []).append(r)
    out = []
    for (ds, m, s), rows in groups.items():
        row = {"dataset": ds, "model": m, "strategy": s, "seeds": [r["seed"] for r in rows],
               "n_seeds": len(rows)}
        keys = [k for k, v in flat_row(rows[0]).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
                and k not in ("seed", "rounds", "sites", "size")]
        for k in keys:
            vals = np.array([r.get(k, np.nan) for r in rows], dtype=float)
            row[k] = _nanmean(vals)
            row[f"{k}_std"] = float(np.nanstd(vals, ddof=1)) if np.isfinite(vals).sum() > 1 \
                else 0.0
        out.append(row)
    return out


def ordering_checks(summary: Sequence[Mapping], metric: str = "iou") -> list[dict]:
    """The paper's ordering, centralized >= S > local, per (dataset, model) and for each
    strategy S other than the two baselines, on the seed means of ``metric``.

    Gaps are in points (``metric`` x 100): ``c_minus_s`` and ``s_minus_l``, with
    ``*_std`` the standard deviation of the difference of the two means (seed spread
    only; 0 with one seed). ``holds`` is None when a baseline is missing.
    """
    by = {(r["dataset"], r["model"], r["strategy"]): r for r in summary}
    checks = []
    for (ds, m, s), r in by.items():
        if s in BASELINES:
            continue
        c, loc = by.get((ds, m, "centralized")), by.get((ds, m, "local"))
        row = {"dataset": ds, "model": m, "strategy": s, "metric": metric,
               "c_minus_s": None, "s_minus_l": None, "c_minus_s_std": None,
               "s_minus_l_std": None}
        for key, hi, lo in (("c_minus_s", c, r), ("s_minus_l", r, loc)):
            if hi is not None and lo is not None:
                row[key] = 100 * (hi[metric] - lo[metric])
                row[f"{key}_std"] = 100 * float(np.hypot(hi.get(f"{metric}_std", 0.0),
                                                         lo.get(f"{metric}_std", 0.0)))
        if row["c_minus_s"] is None or row["s_minus_l"] is None:
            row["holds"] = None
        else:
            row["holds"] = bool(row["c_minus_s"] >= 0 and row["s_minus_l"] > 0)
        checks.append(row)
    return checks


# ------------------------------------------------------------------- tables
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


def write_results(out: str | Path, results: Sequence[Mapping], base: RunConfig | None = None,
                  seeds: Sequence[int] | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``results.json`` and ``results.md`` (each atomically)."""
    out = Path(out)
    rows = [flat_row(r) for r in results]
    summary = summarize_cells(results)
    fields = _unique(k for r in rows for k in r)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    paths = {"csv": out / "results.csv", "json": out / "results.json",
             "md": out / "results.md"}
    atomic_write(paths["csv"], buf.getvalue())
    atomic_write(paths["json"], json.dumps(
        {"settings": base.to_dict() if base is not None else None,
         "seeds": list(seeds) if seeds is not None else None,
         "cells": rows, "summary": summary, "ordering": ordering_checks(summary),
         "sites": [{"cell": r["cell"], "sites": r["site_results"]} for r in results]},
        indent=1, default=_json_default))
    atomic_write(paths["md"], results_markdown(results, base, seeds))
    return paths


def load_results(out: str | Path) -> list[dict]:
    """Every finished cell's result under ``out`` (in folder-name order)."""
    found = []
    for path in sorted(Path(out).glob(f"*/{RESULT}")):
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if r.get("complete"):
            found.append(r)
    return found


def load_worst_cases(folder: str | Path) -> dict[str, np.ndarray]:
    """A cell's ``worst_cases.npz`` as a dict of arrays (images, truths, preds, dice, iou,
    sites, ids, class_names)."""
    path = Path(folder) / WORST
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: the cell is not finished or was run "
                                "with worst=0")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ---------------------------------------------------------------------- CLI
def _parse_width(text: str) -> int | str:
    if text in ("teaching", "paper"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"--width must be an integer, 'teaching' or 'paper'; got "
                         f"{text!r}") from None


def _names(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def add_compare_command(subparsers) -> None:
    """Add ``medseg-kit compare`` to the CLI's subparsers."""
    import argparse

    d = RunConfig()
    p = subparsers.add_parser(
        "compare", help="models x strategies x datasets x seeds: the paper-style table",
        description="Train every (dataset, model, strategy, seed) cell, skipping finished "
                    "ones, and write results.csv, results.json and results.md to --out.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--models", type=_names, default="unet", help="comma-separated")
    p.add_argument("--strategies", type=_names, default="centralized,local,sflv2",
                   help="comma-separated: the baselines centralized (C) and local (L) and "
                        "any of fl, sl, sflv1, sflv2 (S)")
    p.add_argument("--datasets", type=_names, default="kvasir",
                   help="comma-separated: kvasir, ham10000, blastocyst")
    p.add_argument("--seeds", default="1", help="a count (2: seeds 0,1) or a list (0,3,7)")
    p.add_argument("--out", required=True, help="matrix folder (one sub-folder per cell)")
    p.add_argument("--size", type=int, default=d.size, help="square input size (px)")
    p.add_argument("--rounds", type=int, default=d.rounds, help="communication rounds")
    p.add_argument("--sites", type=int, default=d.sites, help="simulated hospitals")
    p.add_argument("--n-images", dest="n_images", type=int, default=d.n_images,
                   help="synthetic images per dataset")
    p.add_argument("--width", default="teaching",
                   help="model width: an integer, 'teaching' or 'paper'")
    p.add_argument("--local-epochs", dest="local_epochs", type=int, default=d.local_epochs,
                   help="passes over its shard a site makes per round")
    p.add_argument("--batch-size", dest="batch_size", type=int, default=d.batch_size,
                   help="images per step")
    p.add_argument("--lr", type=float, default=d.lr, help="learning rate")
    p.add_argument("--device", default=d.device, help="auto, cpu, cuda or cuda:N")
    p.add_argument("--real", action="store_true",
                   help="use the real datasets installed under MEDSEG_DATA_DIR (see "
                        "`medseg-kit data`); default: synthetic stand-ins")
    p.add_argument("--data-root", dest="data_root", action="append", default=[],
                   metavar="DATASET=FOLDER", help="a real dataset's folder (repeatable)")
    p.add_argument("--hd95", action="store_true", help="also compute HD95 (final evaluation)")
    p.add_argument("--worst", type=int, default=6, help="worst test images kept per cell")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_compare)


def _cmd_compare(args) -> int:
    width = _parse_width(args.width)
    base = RunConfig(size=args.size, rounds=args.rounds, sites=args.sites,
                     n_images=args.n_images, width=None if width == "teaching" else width,
                     local_epochs=args.local_epochs, batch_size=args.batch_size, lr=args.lr,
                     device=args.device)
    roots = {}
    for item in args.data_root:
        name, sep, folder = item.partition("=")
        if not sep or not folder:
            raise ValueError(f"--data-root wants DATASET=FOLDER; got {item!r}")
        roots[name] = folder
    if args.real:
        from .data.catalog import find_real

        for name in args.datasets:
            if name not in roots:
                found = find_real(name)
                if found is None:
                    raise FileNotFoundError(f"--real: no complete {name} dataset under "
                                            "MEDSEG_DATA_DIR; see `medseg-kit data --help`")
                roots[name] = str(found)
    results = run_matrix(args.models, args.strategies, args.datasets, args.seeds, args.out,
                         base, progress=not args.quiet, hd95=args.hd95, worst=args.worst,
                         data_roots=roots)
    summary = summarize_cells(results)
    print(metric_table(summary, "iou"))
    print()
    print(ordering_table(ordering_checks(summary)))
    print(f"\nwrote {args.out}/results.md, results.csv, results.json and one folder per cell")
    return 0


# ------------------------------------------------------------------ helpers
def _unique(items: Iterable) -> list:
    return list(dict.fromkeys(items))


def _nanmean(vals: np.ndarray) -> float:
    finite = vals[np.isfinite(vals)]
    return float(finite.mean()) if finite.size else float("nan")


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot write {type(o).__name__} to JSON")


def savez_atomic(path: Path, **arrays) -> None:
    atomic_write(path, lambda f: np.savez_compressed(f, **arrays))
