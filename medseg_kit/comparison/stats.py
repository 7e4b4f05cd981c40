"""Numbers from finished runs, before they become tables or figures.

Two kinds of input:

* matrix results (the dicts :func:`~medseg_kit.comparison.run_cell` and
  :func:`~medseg_kit.comparison.evaluate_run` return): :func:`summarize_cells` (mean ± std
  over seeds) and :func:`ordering_checks` (the paper's C ≥ S > L);
* cached teaching runs (:class:`medseg_kit.teaching.TeachingRun`, grouped by fields of
  their config): :func:`mean_curves`, :func:`paired_gaps`, :func:`site_rows` and
  :func:`wire_rows`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from ..federated.strategies import STRATEGY_CLASSES

#: the two baselines and their letters in the tables; any other strategy is an S
BASELINES = {"centralized": "C", "local": "L"}


# ------------------------------------------------------------ matrix results
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


# ------------------------------------------------------------ teaching runs
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
                     "labels_sent": c.split == "vanilla"
                     and STRATEGY_CLASSES[c.strategy].uses_split})
    return rows


# ------------------------------------------------------------------ helpers
def _unique(items: Iterable) -> list:
    return list(dict.fromkeys(items))


def _nanmean(vals: np.ndarray) -> float:
    finite = vals[np.isfinite(vals)]
    return float(finite.mean()) if finite.size else float("nan")
