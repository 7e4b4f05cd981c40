"""The benchmark's result as Markdown (:func:`to_markdown`) and on disk (:func:`write`).

Ratios are of time per pass (``< 1``: faster than the reference), each the median over
the turns of the ratio within one turn; a cell reads ``wall (CPU)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from .._atomic import atomic_write
from .machine import machine_line
from .passes import run_key, run_label

#: the files :func:`write` puts in its folder
MARKDOWN, JSON = "bench.md", "bench.json"


def _table(header: list[str], rows: list[list[str]], right_from: int = 1) -> list[str]:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def _ratio_columns(result: dict) -> list[tuple[str, str, str]]:
    """(run, reference, header) of the ratio table's columns, in the settings' order."""
    s = result["settings"]
    cols = [("centralized", "plain", "centralized / plain")]
    for strategy in s["strategies"]:
        for n in s["sites"]:
            cols.append((run_key(strategy, n), "centralized",
                         f"{run_label(strategy, n)} / centralized"))
    if any(v != "fp32" for v in s["variants"]):
        cols += [("centralized", "centralized fp32", "centralized / centralized fp32"),
                 ("plain", "plain fp32", "plain / plain fp32")]
    return cols


def ratio_table(result: dict) -> list[str]:
    cols = _ratio_columns(result)
    index = {(r["model"], r["variant"], r["run"], r["reference"]): r
             for r in result["ratios"]}
    widths = {r["model"]: r["width"] for r in result["runs"]}
    rows = []
    for model, variant in dict.fromkeys((r["model"], r["variant"]) for r in result["runs"]):
        cells = [model, str(widths[model]), variant]
        for run, ref, _ in cols:
            r = index.get((model, variant, run, ref))
            cells.append(f"{r['wall']:.2f} ({r['cpu']:.2f})" if r else "–")
        rows.append(cells)
    return _table(["model", "width", "variant", *(h for _, _, h in cols)], rows, 3)


def runs_table(result: dict) -> list[str]:
    rows = []
    for r in result["runs"]:
        w, c = r["wall_s"], r["cpu_s"]
        rows.append([r["model"], r["variant"], r["label"], f"{w['median']:.3f}",
                     f"{w['min']:.3f}–{w['max']:.3f}", f"{c['median']:.3f}",
                     f"{r['img_per_s']:.1f}"])
    return _table(["model", "variant", "run", "wall s / pass", "min–max", "CPU s / pass",
                   "img/s"], rows, 3)


def _verdict(t: dict, clock: str) -> str:
    m, limit = t[f"measured_{clock}"], t["limit"]
    if t[f"holds_{clock}"]:
        return "holds"
    margin = m / limit - 1 if t["kind"] == "time" else 1 - m / limit
    return f"missed by {100 * margin:.1f} %"


def targets_table(result: dict) -> list[str]:
    cpu_clock = result["machine"]["device"] == "cpu"
    rows = []
    for t in result["targets"]:
        if t["kind"] == "time":
            what = f"{t['run']} / {t['reference']} time ≤ {t['limit']:.2f}"
        else:
            what = f"{t['run']} ≥ {t['limit']:.2f} × {t['reference']} img/s"
        cells = [what, t["model"], t["variant"], f"{t['measured_wall']:.3f}",
                 _verdict(t, "wall")]
        if cpu_clock:
            cells += [f"{t['measured_cpu']:.3f}", _verdict(t, "cpu")]
        turns = t.get("turns") or []
        cells.append(f"{min(turns):.2f}–{max(turns):.2f}" if turns else "–")
        rows.append(cells)
    head = ["target (issue 11)", "model", "variant", "wall", "verdict (wall)"]
    head += (["CPU", "verdict (CPU)", "turns (CPU)"] if cpu_clock else ["turns (wall)"])
    return _table(head, rows, 3)


def cache_lines(cache: dict) -> list[str]:
    on, off = cache["cache_on_s"], cache["cache_off_s"]
    return [f"Loading {cache['images']} synthetic {cache['dataset']} images at "
            f"{cache['size']} px: from the decoded-data cache {on['median']:.3f} s, "
            f"decoding every image {off['median']:.3f} s "
            f"(cache / decode = {cache['on_over_off']:.3f}; training reads the same "
            "arrays either way, so the cache changes only the load)."]


def profile_lines(p: dict) -> list[str]:
    lines = [f"torch.profiler over one {p['run']} round of {p['model']} ({p['variant']}, "
             f"{p['images']} images): {p['wall_s']:.2f} s wall, {p['op_calls']:,} operator "
             f"calls, {p['self_cpu_s']:.2f} s CPU self time"
             + (f", {p['self_device_s']:.2f} s device time, {p['kernel_launches']:,} "
                "kernel launches" if p["self_device_s"] else "") + ".", ""]
    device = p["self_device_s"] > 0
    head = ["op", "calls", "self CPU ms"] + (["self device ms"] if device else [])

    def cells(r):
        return [f"`{r['op']}`", f"{r['calls']:,}", f"{r['self_cpu_ms']:.1f}"] + (
            [f"{r['self_device_ms']:.1f}"] if device else [])

    lines += ["By self CPU time:", "", *_table(head, [cells(r) for r in p["by_time"]]), "",
              "By calls:", "", *_table(head, [cells(r) for r in p["by_calls"]])]
    return lines


def notebook_table(rows: list[dict]) -> list[str]:
    return _table(["notebook", "cache", "result", "wall s", "CPU s", "peak MiB"],
                  [[r["notebook"], r["cache"], "ok" if r["ok"] else "FAILED",
                    f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", str(r["peak_rss_mib"])]
                   for r in rows], 3)


def to_markdown(result: dict) -> str:
    """The whole result as Markdown: setting, machine, ratios, seconds, targets, data
    cache, profile, notebooks, notes."""
    s, m = result["settings"], result["machine"]
    width = {None: "teaching width", "paper": "paper width"}.get(s["width"],
                                                                 f"width {s['width']}")
    lines = ["## medseg-kit bench", "", f"Command: `{result['command']}`", "",
             f"Machine: {machine_line(m)}", "",
             f"One pass = one round of one local epoch over the same {s['images']} training "
             f"images ({width}, {s['size']}×{s['size']}, batch {s['batch_size']}, seed "
             f"{s['seed']}) on {m['device']}; BatchNorm calibration off and no evaluation, "
             "so only training is compared. Plain loop: the kit's network whole, one Adam, "
             "the kit's loss, no wire, guard or calibration. Median over "
             f"{s['repeats']} turn(s) after {s['warmup']} warm-up turn(s), every contender "
             "once per turn in rotating order" + (" (`--quick`: tiny sizes, the timings "
                                                  "mean nothing)" if s["quick"] else "")
             + ".", ""]
    if result["runs"]:
        lines += ["### Ratios (time per pass; < 1: faster; cell: wall (CPU))", "",
                  *ratio_table(result), "", "### Seconds per pass", "", *runs_table(result),
                  ""]
    if result["targets"]:
        lines += ["### Targets", "", *targets_table(result), ""]
    if result["data_cache"]:
        lines += ["### Data cache", "", *cache_lines(result["data_cache"]), ""]
    if result["profile"]:
        lines += ["### Where the time goes", "", *profile_lines(result["profile"]), ""]
    if result["notebooks"]:
        lines += ["### Notebooks at their defaults", "", *notebook_table(result["notebooks"]),
                  ""]
    if result["notes"]:
        lines += ["### Notes", "", *(f"- {n}" for n in result["notes"]), ""]
    return "\n".join(lines)


def write(result: dict, out: str | Path) -> tuple[Path, Path]:
    """Write ``bench.md`` and ``bench.json`` into ``out``; return their paths."""
    out = Path(out)
    md = atomic_write(out / MARKDOWN, to_markdown(result) + "\n")
    js = atomic_write(out / JSON, json.dumps(result, indent=1, allow_nan=False) + "\n")
    return md, js
