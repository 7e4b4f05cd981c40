"""Cached teaching runs: trained once, with a progress bar, then loaded in an instant.

Several notebooks and widgets need the same trained runs (three strategies over three
seeds, say). :func:`run` trains a :class:`~medseg_kit.federated.RunConfig` once and keeps
what the lessons need on disk under ``MEDSEG_DATA_DIR/teaching/<key>/``:

- ``entry.json``: the full config, the package version and the source fingerprint (what
  the key was made from), and the history (per round and site);
- ``arrays.npz``: the pooled test images, their truths, each image's prediction by the
  model its site would use, and each image's site.

Only JSON and ``.npz`` (read with ``allow_pickle=False``) are stored: no pickles. The key
(:func:`cache_key`) hashes the full config, the package version and a fingerprint of the
source files that decide what training computes (:data:`FINGERPRINT_SOURCES`), so changing
any config field, the version or that code trains afresh. An entry is written into a
temporary folder and renamed into place when complete, so an interrupted write leaves no
entry behind; an entry that cannot be read back is trained again.

Example:
    >>> from medseg_kit import course, teaching
    >>> runs = teaching.run_many(course.quickstart())          # doctest: +SKIP
    >>> teaching.summary_table(teaching.summary(runs))         # doctest: +SKIP
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from . import __version__
from ._atomic import atomic_write
from .data.base import data_dir, ensure_synthetic
from .federated.config import RunConfig
from .federated.run import History, resolve_data, train
from .units import format_bytes

PACKAGE = Path(__file__).resolve().parent

#: The parts of the package whose source decides what a run computes and what an entry
#: holds (files, or folders taken whole). A change in any of them invalidates the cache;
#: pictures, widgets and the command line do not. ``tests/test_teaching.py`` checks that
#: every module that training imports is listed here.
FINGERPRINT_SOURCES = ("__init__.py", "_atomic.py", "data", "federated", "losses.py",
                       "metrics.py", "models", "protocol.py", "split.py", "wire.py",
                       "teaching.py")

ENTRY_FORMAT = 1
_ARRAYS = ("images", "truths", "predictions", "sites")


@dataclass
class TeachingRun:
    """A trained run, as the lessons use it.

    Attributes:
        config: what was trained.
        history: per round and per site: loss, Dice, IoU, bytes, seconds.
        images: the pooled test images, N x H x W x 3 ``uint8``.
        truths: their masks, N x H x W class ids.
        predictions: each test image predicted by the model its site would use (the global
            model; each site's own model for ``local``), N x H x W class ids.
        sites: the site id of each test image (N).
        class_names: the dataset's class names, background first.
    """

    config: RunConfig
    history: History
    images: np.ndarray
    truths: np.ndarray
    predictions: np.ndarray
    sites: np.ndarray
    class_names: list[str]

    @property
    def label(self) -> str:
        """A short name, e.g. ``"sflv2 seed 0"``."""
        return f"{self.config.strategy} seed {self.config.seed}"

    def final(self) -> dict:
        """The last round's pooled metrics (:meth:`History.final`)."""
        return self.history.final()


# ------------------------------------------------------------------ the key
def cache_dir() -> Path:
    """Where the entries live: ``MEDSEG_DATA_DIR/teaching``."""
    return data_dir() / "teaching"


@functools.lru_cache(maxsize=1)
def source_fingerprint() -> str:
    """A hash of every ``.py`` file under :data:`FINGERPRINT_SOURCES` (path and content)."""
    h = hashlib.sha256()
    for name in FINGERPRINT_SOURCES:
        path = PACKAGE / name
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(f.relative_to(PACKAGE).as_posix().encode() + b"\0")
            h.update(f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _identity(config: RunConfig) -> dict:
    return {"format": ENTRY_FORMAT, "config": config.to_dict(), "version": __version__,
            "source": source_fingerprint()}


def cache_key(config: RunConfig) -> str:
    """The entry name of ``config``: readable fields, then a hash of the full config, the
    package version and :func:`source_fingerprint`."""
    text = json.dumps(_identity(config), sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return f"{config.model}-{config.strategy}-seed{config.seed}-{digest}"


# ------------------------------------------------------------------ one entry
def _load(config: RunConfig, folder: Path) -> TeachingRun | None:
    """The entry in ``folder``, or None when it is missing or damaged."""
    if not folder.is_dir():
        return None
    try:
        entry = json.loads((folder / "entry.json").read_text())
        if entry["identity"] != json.loads(json.dumps(_identity(config), default=str)):
            return None
        history = History(entry["history"]["config"], entry["history"]["records"],
                          entry["history"].get("events", []))
        with np.load(folder / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in _ARRAYS}
        n = len(arrays["images"])
        if any(len(a) != n for a in arrays.values()) or not history.records:
            return None
        return TeachingRun(config, history, **arrays,
                           class_names=[str(c) for c in entry["class_names"]])
    except Exception:  # unreadable in any way (bad zip, bad JSON, wrong shapes): retrain
        return None


def _save(result: TeachingRun, folder: Path) -> None:
    """Write ``result`` to ``folder``: into a temporary folder first, renamed when whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(folder.parent)
    tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        atomic_write(tmp / "arrays.npz", lambda f: np.savez_compressed(
            f, **{k: getattr(result, k) for k in _ARRAYS}))
        atomic_write(tmp / "entry.json", json.dumps({
            "identity": _identity(result.config), "class_names": result.class_names,
            "history": json.loads(result.history.to_json())}, indent=1, default=str))
        try:
            os.replace(tmp, folder)
        except OSError:  # the folder exists: a damaged entry, or one another process wrote
            if _load(result.config, folder) is None:
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _remove_orphans(parent: Path) -> None:
    """Remove temporary folders left by writers that were killed mid-write."""
    for d in parent.glob(".tmp-*"):
        try:
            os.kill(int(d.name.rsplit("-", 1)[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except (ValueError, OSError):
            pass


def _train(config: RunConfig, data, progress: bool) -> TeachingRun:
    """Train ``config`` and collect the pooled test set and its predictions."""
    history, strategy = train(config, data=data, progress=progress)
    run = strategy.run
    idx, site_of, predictions = run.predict_sites(strategy)
    order = np.argsort(idx, kind="stable")  # test-set order
    idx, site_of, predictions = idx[order], site_of[order], predictions[order].astype(np.uint8)
    images = run.test.images[idx]
    if images.ndim == 3:
        images = images[..., None]
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return TeachingRun(config, history, images.astype(np.uint8),
                       run.test.masks[idx].astype(np.uint8), predictions,
                       site_of.astype(np.int64), [str(c) for c in run.test.class_names])


def _data_key(c: RunConfig) -> tuple:
    """What :func:`resolve_data` reads: runs with equal keys share one loaded dataset."""
    if c.data_root:
        return (c.dataset, c.data_root, c.size)
    return (c.dataset, None, c.size, c.n_images, c.seed)


def cached(config: RunConfig) -> TeachingRun | None:
    """The cached entry of ``config``, or None (nothing is trained)."""
    return _load(config, cache_dir() / cache_key(config))


def run(config: RunConfig, progress: bool = True, *, data=None) -> TeachingRun:
    """``config`` trained once (with a progress bar) and cached; later calls load it.

    Args:
        config: the run.
        progress: show the rounds' progress bar while training.
        data: the loaded dataset, when the caller has it (else it is loaded here).
    """
    folder = cache_dir() / cache_key(config)
    hit = _load(config, folder)
    if hit is not None:
        return hit
    result = _train(config, data, progress)
    _save(result, folder)
    return result


def run_many(configs: Iterable[RunConfig], progress: bool = True) -> list[TeachingRun]:
    """Each config through :func:`run`, in order, with one progress bar over the runs.

    Cached runs are loaded first; the others are trained grouped by dataset, so each
    distinct dataset is loaded once (and let go when no remaining run needs it).
    """
    configs = list(configs)
    out: list[TeachingRun | None] = [cached(c) for c in configs]
    todo = sorted((i for i, r in enumerate(out) if r is None),
                  key=lambda i: repr(_data_key(configs[i])))
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc="teaching runs",
               unit="run", disable=not progress or not configs)
    loaded_key, data = None, None
    try:
        for i in todo:
            c = configs[i]
            if _data_key(c) != loaded_key:
                loaded_key, data = _data_key(c), resolve_data(c, progress=False)
            bar.set_postfix_str(f"{c.strategy} seed {c.seed} {c.partition}")
            out[i] = run(c, progress=False, data=data)
            bar.update()
    finally:
        bar.close()
    return out


def prepare(names: Sequence[str] | None = None, progress: bool = True) -> int:
    """Fill the cache for the course's defaults: every run of :data:`course.SCENARIOS`
    (all of them, or those ``names``) and the synthetic sets of :data:`course.SHOWN_DATA`.
    ``binder/postBuild`` and ``make course`` call it.

    Returns the number of runs that had to be trained (0 when the cache was full).
    """
    from . import course

    if names is None:
        configs, shown = course.all_runs(), list(course.SHOWN_DATA.values())
    else:
        known = set(course.SCENARIOS) | set(course.SHOWN_DATA)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown scenario(s) {unknown}; choose from {sorted(known)}")
        configs = [c for n in names if n in course.SCENARIOS for c in course.SCENARIOS[n]()]
        shown = [course.SHOWN_DATA[n] for n in names if n in course.SHOWN_DATA]
    for name, n_images, seed in {s for sets in shown for s in sets}:
        ensure_synthetic(name, n_images, seed, progress=False)
    missing = sum(cached(c) is None for c in configs)
    run_many(configs, progress=progress)
    return missing


# ------------------------------------------------------------------ summaries
def _group_value(r: TeachingRun, name: str):
    if hasattr(r.config, name):
        return getattr(r.config, name)
    return r.final()[name]


def summary(runs: Iterable[TeachingRun], by: str | Sequence[str] = "strategy",
            metric: str = "dice") -> list[dict]:
    """Mean ± std of a final metric over the runs of each group (seeds, usually).

    Args:
        runs: teaching runs.
        by: a config field (``strategy``, ``partition``, ``model`` ...) or a tuple of them.
        metric: a key of :meth:`TeachingRun.final` (``dice``, ``iou``,
            ``bytes_per_site_round``, ``total_seconds`` ...).

    Returns:
        One dict per group, in order of first appearance: the group's field(s), ``n``,
        ``<metric>_mean``, ``<metric>_std`` (sample standard deviation, ``ddof=1``; 0 for a
        single run), ``<metric>_min``, ``<metric>_max``, and ``seeds`` with
        ``<metric>_values`` (per run, in the order given).
    """
    names = (by,) if isinstance(by, str) else tuple(by)
    groups: dict[tuple, list[TeachingRun]] = {}
    for r in runs:
        groups.setdefault(tuple(_group_value(r, n) for n in names), []).append(r)
    rows = []
    for key, members in groups.items():
        values = np.array([float(m.final()[metric]) for m in members])
        rows.append({**dict(zip(names, key)), "n": len(values),
                     f"{metric}_mean": float(values.mean()),
                     f"{metric}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                     f"{metric}_min": float(values.min()), f"{metric}_max": float(values.max()),
                     "seeds": [m.config.seed for m in members],
                     f"{metric}_values": values.tolist()})
    return rows


class MarkdownTable(str):
    """A Markdown string that Jupyter renders as a table when it ends a cell."""

    def _repr_markdown_(self) -> str:
        return str(self)


_TITLES = {"dice": "Dice", "iou": "IoU", "bytes_per_site_round": "bytes / site / round",
           "total_seconds": "seconds"}


def _fmt(metric: str, value: float) -> str:
    if "bytes" in metric:
        return format_bytes(value)
    if "seconds" in metric:
        return f"{value:.1f}"
    return f"{value:.3f}"


def summary_table(rows: Sequence[dict]) -> MarkdownTable:
    """Rows of :func:`summary` (several metrics may be merged into one row) as a Markdown
    table: the group fields, ``mean ± std`` of each metric, and the number of seeds.

    A notebook shows it with ``display(Markdown(summary_table(rows)))``; as the last
    expression of a cell it renders as a table too.
    """
    if not rows:
        return MarkdownTable("")
    metrics = [k[:-5] for k in rows[0] if k.endswith("_mean")]
    derived = {"n", "seeds"} | {f"{m}_{s}" for m in metrics
                                for s in ("mean", "std", "min", "max", "values")}
    fields = [k for k in rows[0] if k not in derived]
    head = fields + [f"{_TITLES.get(m, m)} (mean ± std)" for m in metrics] + ["seeds"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "---|" * len(fields) + "---:|" * (len(metrics) + 1)]
    for r in rows:
        cells = [str(r[f]) for f in fields]
        cells += [f"{_fmt(m, r[f'{m}_mean'])} ± {_fmt(m, r[f'{m}_std'])}" for m in metrics]
        cells.append(str(r["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    return MarkdownTable("\n".join(lines))


if __name__ == "__main__":  # python -m medseg_kit.teaching: what binder/postBuild runs
    trained = prepare()
    print(f"teaching cache ready in {cache_dir()} ({trained} run(s) trained now)")
