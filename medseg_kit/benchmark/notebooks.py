"""Notebook wall time and peak memory at the course's defaults, from ``make course``'s
runner (``tests/run_course.py``: each notebook in its own process, one thread, the
teaching cache warm).

The runner lives beside the tests, in a source checkout; an installed kit has no
notebooks to time, and :func:`time_notebooks` says so instead of failing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def course_runner() -> Path | None:
    """``tests/run_course.py`` of the source checkout this kit runs from, if any."""
    path = Path(__file__).resolve().parents[2] / "tests" / "run_course.py"
    return path if path.is_file() else None


def course_rows(report: dict) -> list[dict]:
    """The notebook rows of a ``course_report.json``: wall and CPU seconds, peak MiB."""
    rows = []
    for mode, results in report.get("results", {}).items():
        for r in results:
            rows.append({"cache": mode, "notebook": r["notebook"], "ok": bool(r["ok"]),
                         "wall_s": r["wall_s"], "cpu_s": r["cpu_s"],
                         "peak_rss_mib": r["kernel_peak_rss_mib"]
                         or r["max_process_rss_mib"], "error": r.get("error")})
    return rows


def time_notebooks(out: Path, timeout: float = 900) -> tuple[list[dict], str | None]:
    """Run every course notebook at its defaults (warm teaching cache); its rows and a
    note (why there are none, or which notebooks failed). The runner's log and report
    land in ``out``."""
    runner = course_runner()
    if runner is None:
        return [], ("notebook timings need a source checkout (tests/run_course.py); run "
                    "`make course` there and read outputs/notebooks/course_report.md")
    out.mkdir(parents=True, exist_ok=True)
    log = out / "run_course.log"
    with open(log, "w") as f:
        rc = subprocess.run([sys.executable, str(runner), "--out", str(out), "--timeout",
                             str(timeout)], stdout=f, stderr=subprocess.STDOUT).returncode
    try:
        rows = course_rows(json.loads((out / "course_report.json").read_text()))
    except (OSError, ValueError, KeyError) as e:
        return [], f"the course runner wrote no readable report ({e}); see {log}"
    failed = [r["notebook"] for r in rows if not r["ok"]]
    note = (f"course runner exited {rc}; failed: {', '.join(failed)} (see {log})"
            if rc or failed else None)
    return rows, note
