"""Training the matrix: every (dataset, model, strategy, seed) cell, skipping finished ones.

:func:`run_matrix` plans the cells, checks every finished one against the configuration
asked for (:func:`finished_result`), then trains the rest one by one (:func:`run_cell`:
train or resume, evaluate once, write the cell's files) and rewrites the result files
after each. The folder layout is described in :mod:`medseg_kit.comparison.results`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .._atomic import atomic_write
from ..data import SegData
from ..federated import RunConfig, train
from ..federated.run import resolve_data
from .evaluation import evaluate_strategy
from .results import RESULT, WORST, cell_name, json_default, savez_atomic, write_results

# what a cell's config may differ in and still count as the same experiment
_IGNORED_FOR_MATCH = ("device",)


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


def _match_dict(config: RunConfig | Mapping) -> dict:
    if not isinstance(config, RunConfig):  # a saved config: fill the fields added since
        try:
            config = RunConfig.from_dict(dict(config))
        except (TypeError, ValueError):
            pass  # compared as it is (and found different)
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
    atomic_write(folder / RESULT, json.dumps(result, indent=1, default=json_default))
    return json.loads(json.dumps(result, default=json_default))


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
        out: the matrix folder (see :mod:`medseg_kit.comparison.results` for its layout).
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

    Example:
        >>> from medseg_kit import comparison
        >>> from medseg_kit.federated import RunConfig
        >>> results = comparison.run_matrix(  # doctest: +SKIP
        ...     ["unet", "segnet"], ["centralized", "local", "sflv2"],
        ...     ["kvasir", "ham10000", "blastocyst"], seeds=2, out="runs/compare",
        ...     base_config=RunConfig(size=64, rounds=8, n_images=80, device="cpu"))
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
    from ..data import LOADERS
    from ..models import list_models

    known = list_models()
    bad = [m for m in models if m not in known]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; available: {', '.join(known)}")
    bad = [d for d in datasets if d not in LOADERS]
    if bad:
        raise ValueError(f"unknown dataset(s) {bad}; available: {', '.join(sorted(LOADERS))}")
