"""Tables, pictures and files of the privacy measurements (pure functions of the results).

* :func:`cut_table`, :func:`label_table`, :func:`tradeoff_table`: Markdown tables;
* :func:`tradeoff_rows`: per strength of a defense, the run's Dice beside the attacks';
* :func:`plot_reconstructions`, :func:`plot_label_inference`, :func:`plot_tradeoff`:
  matplotlib figures (nothing is shown or saved here);
* :func:`write_results`: the CSV, JSON and Markdown files and the figures, each written
  atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .._atomic import atomic_write
from ..viz import LINE_STYLES, MARKERS, overlay
from .attack import InversionResult
from .labels import LabelResult
from .sweep import SweepResult


class MarkdownTable(str):
    """A Markdown string that Jupyter renders as a table when it ends a cell."""

    def _repr_markdown_(self) -> str:
        return str(self)


def _f(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, float) and math.isinf(v):
        return "∞"
    return f"{v:.{digits}f}"


def _table(head: Sequence[str], align: str, rows: list[list[str]]) -> MarkdownTable:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return MarkdownTable("\n".join(lines))


# ------------------------------------------------------------------ tables
def defense_name(row: dict) -> str:
    """``none``, ``noise σ=1 (gaussian)`` or ``NoPeek λ=3`` for a row with ``defense``,
    ``strength`` (and ``noise``)."""
    if row["defense"] == "none" or row["strength"] == 0:
        return "none"
    if row["defense"] == "noise":
        return f"noise σ={row['strength']:g} ({row['noise']})"
    if row["defense"] == "nopeek":
        return f"NoPeek λ={row['strength']:g}"
    return f"{row['defense']} {row['strength']:g}"


def cut_table(rows: Sequence[dict]) -> MarkdownTable:
    """The inversion attack by model and cut depth (rows of :attr:`SweepResult.rows`),
    with each model's floor: the score of guessing the mean auxiliary image."""
    out, floors = [], {}
    for r in rows:
        cut = f"({r['front']}, {r['back']})"
        if r.get("refused"):
            out.append([r["model"], str(r["front"]), cut, defense_name(r),
                        "refused: raw image data", "—", "—"])
            continue
        received = r["up"] + (" (raw image data)" if r["raw"] else "")
        out.append([r["model"], str(r["front"]), cut, defense_name(r), received,
                    _f(r["ssim"]), _f(r["psnr"], 1)])
        floors.setdefault(r["model"], (r["baseline_ssim"], r["baseline_psnr"]))
    for model, (s, p) in floors.items():
        out.append([model, "—", "nothing received", "—", "guess: the mean auxiliary image",
                    _f(s), _f(p, 1)])
    return _table(["model", "front", "cut", "defense", "server receives", "SSIM",
                   "PSNR (dB)"], ["---", "---:", "---", "---", "---", "---:", "---:"], out)


def label_table(rows: Sequence[dict]) -> MarkdownTable:
    """The label inference (rows of :attr:`SweepResult.label_rows`)."""
    when = {"trained": "end of training", "start": "first round (untrained)"}
    out = [[r["model"], r["split"], f"({r['front']}, {r['back']})", r["received"],
            when.get(r["when"], r["when"]), defense_name(r), _f(r["dice"]),
            _f(r["baseline_dice"])] for r in rows]
    return _table(["model", "split", "cut", "server reads", "when", "defense",
                   "inferred-mask Dice", "all-foreground Dice"],
                  ["---", "---", "---", "---", "---", "---", "---:", "---:"], out)


def tradeoff_rows(result: SweepResult, front: int | None = None) -> list[dict]:
    """Per strength of the sweep's defense, at ``front`` (default: the trained cut's):
    the run's test Dice, the inversion attack's SSIM and PSNR, the label inference's Dice
    (U-shaped, end of training) and the scale of what was sent (``signal_std``)."""
    front = result.trained_cut[0] if front is None else front
    out = []
    for r in result.rows:
        if r["front"] != front or r.get("refused"):
            continue
        try:
            label = result.label(r["strength"])["dice"]
        except KeyError:
            label = float("nan")
        out.append({"model": r["model"], "defense": r["defense"], "noise": r["noise"],
                    "trained_cut": r["trained_cut"],
                    "strength": r["strength"], "front": r["front"], "back": r["back"],
                    "dice": r["dice"], "ssim": r["ssim"], "psnr": r["psnr"],
                    "label_dice": label, "signal_std": r["signal_std"],
                    "baseline_ssim": r["baseline_ssim"]})
    return out


def tradeoff_table(rows: Sequence[dict]) -> MarkdownTable:
    """Rows of :func:`tradeoff_rows` (several defenses may be concatenated)."""
    names = {"none": "none", "noise": "noise σ", "nopeek": "NoPeek λ"}
    out = [[names.get(r["defense"], r["defense"])
            + (f" ({r['noise']})" if r["defense"] == "noise" else ""), _f(r["strength"], 2),
            _f(r["dice"]), _f(r["ssim"]), _f(r["psnr"], 1), _f(r["label_dice"]),
            _f(r["signal_std"], 2)] for r in rows]
    return _table(["defense", "strength", "test Dice", "attack SSIM", "attack PSNR (dB)",
                   "inferred-mask Dice", "std of what is sent"],
                  ["---", "---:", "---:", "---:", "---:", "---:", "---:"], out)


# ---------------------------------------------------------------- pictures
def plot_reconstructions(attacks: Sequence[InversionResult], n_images: int = 4,
                         title: str | None = None, row_labels: Sequence[str] | None = None
                         ) -> plt.Figure:
    """The site's images (top row) and the server's reconstructions, one row per attack
    (cut depth, or defense strength), each labelled with its cut and mean SSIM (and
    ``row_labels`` when given: one per attack, e.g. the defense)."""
    attacks = list(attacks)
    if not attacks:
        raise ValueError("no attack to show")
    if row_labels is not None and len(row_labels) != len(attacks):
        raise ValueError(f"{len(row_labels)} row labels for {len(attacks)} attacks")
    k = min(n_images, len(attacks[0].originals))
    fig, axes = plt.subplots(len(attacks) + 1, k, figsize=(1.6 * k + 1.4, 1.6 * len(attacks)
                                                            + 1.9), squeeze=False)
    for j in range(k):
        axes[0, j].imshow(attacks[0].originals[j])
        for i, a in enumerate(attacks, 1):
            axes[i, j].imshow(a.reconstructions[j])
            axes[i, j].set_title(f"{a.ssim_per_image[j]:.2f}", fontsize=7, pad=2)
    axes[0, 0].set_ylabel("the site's\nimage", fontsize=8)
    for i, a in enumerate(attacks, 1):
        extra = (f"\n{row_labels[i - 1]}" if row_labels is not None
                 else f"\nσ={a.noise_std:g}" if a.noise_std else "")
        raw = "\nRAW" if a.raw else ""
        axes[i, 0].set_ylabel(f"cut ({a.front}, {a.back})\nSSIM {a.ssim:.3f}{extra}{raw}",
                              fontsize=8, color="#b00020" if a.raw else "black")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or f"{attacks[0].model}: what the server reconstructs (SSIM per image "
                 "above each)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_label_inference(results: Sequence[LabelResult], images: np.ndarray | None = None,
                         n_images: int = 3) -> plt.Figure:
    """Per image (rows): the true mask (over the image when given), then per result the
    score map the server read (the gradient magnitude, or the label) and its inferred
    mask, titled with that image's Dice."""
    results = list(results)
    k = min(n_images, len(results[0].truths))
    cols = 1 + 2 * len(results)
    fig, axes = plt.subplots(k, cols, figsize=(1.7 * cols, 1.75 * k + 0.6), squeeze=False)
    for i in range(k):
        truth = results[0].truths[i]
        axes[i, 0].imshow(overlay(images[i], truth) if images is not None else truth,
                          cmap=None if images is not None else "gray")
        axes[i, 0].set_title("true mask" if i == 0 else "", fontsize=8)
        for j, r in enumerate(results):
            what = "label" if r.vanilla else "|gradient|"
            axes[i, 1 + 2 * j].imshow(r.maps[i], cmap="magma")
            axes[i, 2 + 2 * j].imshow(r.inferred[i], cmap="gray", vmin=0, vmax=1)
            split = "vanilla" if r.vanilla else "U-shaped"
            axes[i, 1 + 2 * j].set_title(f"{split}: {what}" if i == 0 else "", fontsize=8)
            axes[i, 2 + 2 * j].set_title(f"inferred, Dice {r.dice_per_image[i]:.2f}",
                                         fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{results[0].model}: what the server learns of the masks", fontsize=9)
    fig.tight_layout()
    return fig


def plot_tradeoff(rows: Sequence[dict], ax=None) -> plt.Figure:
    """Test Dice (the model's use) against the inversion attack's SSIM (its leak), one
    curve per defense, points labelled with their strength; the dotted line is the SSIM
    of a server that received nothing (guessing its mean auxiliary image). Up and to the
    left is better."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.6, 4.0))
    else:
        fig = ax.figure
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["defense"] + (f" ({r['noise']})" if r["defense"] == "noise"
                                          else ""), []).append(r)
    symbol = {"noise": "σ", "nopeek": "λ"}
    for i, (name, rs) in enumerate(groups.items()):
        rs = sorted(rs, key=lambda r: r["strength"])
        xs, ys = [r["ssim"] for r in rs], [r["dice"] for r in rs]
        ax.plot(xs, ys, linestyle=LINE_STYLES[i % len(LINE_STYLES)],
                marker=MARKERS[i % len(MARKERS)], label=name)
        for r in rs:
            if r["strength"] == 0 and i > 0:
                continue  # the undefended run is every curve's start: label it once
            text = ("undefended" if r["strength"] == 0
                    else f"{symbol.get(r['defense'], 's')}={r['strength']:g}")
            ax.annotate(text,
                        (r["ssim"], r["dice"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7)
    floors = [r["baseline_ssim"] for r in rows if not math.isnan(r["baseline_ssim"])]
    if floors:
        ax.axvline(float(np.mean(floors)), color="gray", linestyle=":", lw=1,
                   label="SSIM of a blind guess")
    ax.set_xlabel("inversion attack SSIM (lower: more private)")
    ax.set_ylabel("test Dice (higher: more useful)")
    ax.set_title("the price of privacy", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- files
def _csv(rows: Sequence[dict]) -> str:
    if not rows:
        return ""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return v


#: the files :func:`write_results` writes (figures: one reconstruction and one label
#: picture per model, plus the trade-off when a defense was swept)
FILES = ("attacks.csv", "labels.csv", "tradeoff.csv", "results.json", "results.md")


def write_results(out: str | Path, results: Sequence[SweepResult], *,
                  config: dict | None = None, n_images: int = 4) -> list[Path]:
    """Write the tables (CSV, JSON, Markdown) and the figures of ``results`` to ``out``;
    every file atomically. Returns the paths written."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; expected a folder")
    rows = [r for res in results for r in res.rows]
    labels = [r for res in results for r in res.label_rows]
    trade = [r for res in results if res.defense != "none" for r in tradeoff_rows(res)]
    written = [atomic_write(out / "attacks.csv", _csv(rows)),
               atomic_write(out / "labels.csv", _csv(labels)),
               atomic_write(out / "tradeoff.csv", _csv(trade))]
    doc = {"config": config or {}, "attacks": rows, "labels": labels, "tradeoff": trade}
    written.append(atomic_write(out / "results.json",
                                json.dumps(_jsonable(doc), indent=1, allow_nan=False)))
    md = ["# Privacy of the cut", "", "## Inversion attack by cut depth", "",
          cut_table(rows), "", "## Label inference", "", label_table(labels)]
    if trade:
        md += ["", "## Defenses and their price", "", tradeoff_table(trade)]
    written.append(atomic_write(out / "results.md", "\n".join(md) + "\n"))

    def save(fig, name: str) -> None:
        written.append(atomic_write(out / name, lambda f: fig.savefig(f, format="png",
                                                                        dpi=110)))
        plt.close(fig)

    for res in results:
        for v in sorted({k[0] for k in res.attacks}):
            attacks = [a for (s, _), a in sorted(res.attacks.items()) if s == v]
            save(plot_reconstructions(attacks, n_images),
                 f"reconstructions_{res.model}_{res.defense}_{v:g}.png")
        lab = [res.labels[k] for k in sorted(res.labels) if k[2] == "trained"
               and k[0] == min(k2[0] for k2 in res.labels)]
        if lab:
            save(plot_label_inference(lab), f"labels_{res.model}.png")
    if trade:
        save(plot_tradeoff(trade), "tradeoff.png")
    return written
