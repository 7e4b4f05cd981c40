"""Check a dataset folder and report every problem, not just the first.

:func:`check_dataset` scans the layout with the dataset's own scanner (the same code the
loader uses), then decodes every sample at full size, collecting — instead of raising —
missing masks and images, unreadable or truncated files, image/mask size mismatches and
unexpected mask values. The result is a :class:`CheckReport`; ``report.ok`` says whether
the loader will read the folder, ``report.format()`` is the human-readable list that
``medseg-kit data check`` prints.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .base import CLASSES, DECODERS, SCANNERS, DataError, _check_name, decode_item


@dataclass
class Problem:
    """One problem: its kind (see :class:`~medseg_kit.data.base.DataError`), the file at
    fault and a message saying what was expected."""

    kind: str
    path: str | None
    message: str


@dataclass
class CheckReport:
    """What :func:`check_dataset` found.

    Attributes:
        dataset, root: what was checked.
        counts: ``samples`` (complete samples listed), ``decoded`` (read without error),
            ``extra_files`` (files in the layout no sample uses), ``problems``.
        class_pixels: pixels per class over the decoded masks (full size).
        problems: every problem found.
        extra: the unused files (first 50).
    """

    dataset: str
    root: str
    counts: dict = field(default_factory=dict)
    class_pixels: dict = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.counts.get("samples", 0) > 0

    def by_kind(self) -> dict[str, list[Problem]]:
        out: dict[str, list[Problem]] = {}
        for p in self.problems:
            out.setdefault(p.kind, []).append(p)
        return out

    def format(self, limit: int = 20, extra_limit: int = 10) -> str:
        """A readable report: counts, each kind of problem with its files (the first
        ``limit`` of each), then the unused files (the first ``extra_limit``)."""
        c = self.counts
        lines = [f"{self.dataset} at {self.root}: {c.get('samples', 0)} samples, "
                 f"{c.get('decoded', 0)} decoded, {c.get('extra_files', 0)} unused file(s), "
                 f"{len(self.problems)} problem(s)"]
        if self.class_pixels:
            total = max(1, sum(self.class_pixels.values()))
            lines.append("class pixels: " + ", ".join(
                f"{k} {v / total:.1%}" for k, v in self.class_pixels.items()))
        for kind, probs in sorted(self.by_kind().items()):
            lines.append(f"{kind} ({len(probs)}):")
            lines += [f"  - {p.message}" for p in probs[:limit]]
            if len(probs) > limit:
                lines.append(f"  ... and {len(probs) - limit} more")
        n_extra = c.get("extra_files", len(self.extra))
        if n_extra:
            lines.append(f"unused file(s) ({n_extra}): in the layout, but no sample uses them")
            shown = self.extra[:extra_limit]
            lines += [f"  - {p}" for p in shown]
            if n_extra > len(shown):
                lines.append(f"  ... and {n_extra - len(shown)} more")
        lines.append("OK" if self.ok else "NOT OK: the loader will refuse this folder")
        return "\n".join(lines)


def _problem(e: DataError) -> Problem:
    return Problem(e.kind, e.path, str(e))


def check_dataset(name: str, root: str | Path, decode: bool = True, limit: int | None = None,
                  progress: bool = False, **options) -> CheckReport:
    """Check dataset ``name`` under ``root``; never stops at the first problem.

    Args:
        name: a registered dataset.
        root: its folder.
        decode: also decode every sample (slower; finds unreadable files, size mismatches
            and bad mask values).
        limit: decode at most this many samples.
        progress: show a progress bar while decoding.
        **options: loader options that change the layout (``layout`` for blastocyst).
    """
    _check_name(name)
    report = CheckReport(name, str(root))
    if name not in SCANNERS:
        raise ValueError(f"dataset {name!r} registered no scanner; cannot check it")
    try:
        scan = SCANNERS[name](Path(root), **options)
    except DataError as e:
        report.problems.append(_problem(e))
        report.counts = {"samples": 0, "decoded": 0, "extra_files": 0, "problems": 1}
        return report
    report.problems += [_problem(p) for p in scan.problems]
    report.extra = [str(p) for p in scan.extra[:50]]
    decoded = 0
    pixels: Counter = Counter()
    if decode and name in DECODERS:
        items = scan.items if limit is None else scan.items[:limit]
        for item in tqdm(items, desc=f"checking {name}", disable=not progress, leave=False):
            try:
                _, mask = decode_item(DECODERS[name], item)
            except DataError as e:
                report.problems.append(_problem(e))
                continue
            decoded += 1
            pixels.update(dict(enumerate(np.bincount(mask.ravel()).tolist())))
    names = CLASSES.get(name, ())
    report.class_pixels = {(names[k] if k < len(names) else str(k)): int(v)
                           for k, v in sorted(pixels.items())}
    report.counts = {"samples": len(scan.items), "decoded": decoded,
                     "extra_files": len(scan.extra), "problems": len(report.problems)}
    return report
