"""Run every course notebook at its defaults and check its claims (``make course``).

Each notebook ``notebooks/NN_*.ipynb`` runs at its own default parameters with papermill,
in a process of its own with one thread (``OMP_NUM_THREADS=1``, as on Binder's single
CPU); the executed copy lands in ``outputs/notebooks/``. For each notebook the runner
measures the wall seconds, the CPU seconds (user + system, papermill and its kernel
together, from the operating system's accounting of the finished process tree) and the
peak resident memory of the kernel (sampled every 0.1 s with psutil, and the exact peak of
the largest process of the tree from the same accounting). It writes
``course_report.md`` and ``course_report.json`` beside the copies, and exits non-zero when
a notebook fails, naming the notebook and the claim (the ``AssertionError`` of its last
cell) or the error that stopped it.

The teaching cache (``MEDSEG_DATA_DIR/teaching``):

- ``--cache warm`` (default): first fills the cache for every course run
  (``teaching.prepare()``, as Binder's ``postBuild`` does; measured as its own step), then
  runs the notebooks against it;
- ``--cache cold``: each notebook gets an empty ``MEDSEG_DATA_DIR`` of its own, so it
  trains and synthesizes everything it needs (what a learner meets on a Binder without
  ``postBuild``'s cache);
- ``--cache both``: cold, then warm; the report shows the two side by side.

    python tests/run_course.py [--cache warm|cold|both] [--only 00 04] [--timeout 900]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
MIB = 1024 ** 2
BINDER = {"wall_s": 180, "rss_mib": 1536}  # 3 minutes, 1.5 GiB on Binder's one CPU


def _env(data_dir: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", MPLBACKEND="Agg",
               MEDSEG_DATA_DIR=data_dir, PYTHONUNBUFFERED="1")
    env.pop("JPY_PARENT_PID", None)
    return env


def _kill_tree(proc: psutil.Process) -> None:
    """Kill ``proc`` and its descendants, by pid (a kernel runs in a session of its own)."""
    try:
        family = [*proc.children(recursive=True), proc]
    except psutil.Error:
        family = [proc]
    for p in family:
        try:
            p.kill()
        except psutil.Error:
            pass


def measure(cmd: list[str], env: dict, timeout: float, log: Path) -> dict:
    """Run ``cmd``; return its exit code, wall and CPU seconds and peak memory."""
    peak = {"kernel": 0, "tree": 0, "kernel_cpu": 0.0}
    done = threading.Event()
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=ROOT, start_new_session=True)
        me = psutil.Process(proc.pid)

        def sample():
            while not done.is_set():
                try:
                    family = [me, *me.children(recursive=True)]
                except psutil.Error:
                    family = []
                total = 0
                for p in family:
                    try:
                        rss = p.memory_info().rss
                        total += rss
                        if any("ipykernel" in a for a in p.cmdline()):
                            peak["kernel"] = max(peak["kernel"], rss)
                            cpu = p.cpu_times()
                            peak["kernel_cpu"] = max(peak["kernel_cpu"], cpu.user + cpu.system)
                    except psutil.Error:
                        pass
                peak["tree"] = max(peak["tree"], total)
                done.wait(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timed_out, finished = False, False
        deadline = time.monotonic() + timeout
        try:
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    finished = True
                    break
                if time.monotonic() > deadline:
                    timed_out = True
                    break
                time.sleep(0.05)
        finally:
            if not finished:  # timed out, or this runner was stopped: stop what it started
                _kill_tree(me)
                pid, status, usage = os.wait4(proc.pid, 0)
                done.set()
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        done.set()
        sampler.join()
    return {"rc": proc.returncode, "timed_out": timed_out, "wall_s": round(wall, 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
            "kernel_cpu_s": round(peak["kernel_cpu"], 1),
            "kernel_peak_rss_mib": round(peak["kernel"] / MIB),
            "tree_peak_rss_mib": round(peak["tree"] / MIB),
            "max_process_rss_mib": round(usage.ru_maxrss * 1024 / MIB)}


def failure(executed: Path, log: Path) -> str | None:
    """What stopped the notebook: the failed claim of its last cell, or the first error."""
    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return f"no executed notebook; see {log}: " + log.read_text()[-500:].strip()
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    for i, cell in enumerate(code):
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                where = "the last cell" if i == len(code) - 1 else f"code cell {i + 1}"
                if o["ename"] == "AssertionError" and i == len(code) - 1:
                    return f"claim failed ({where}): {o['evalue']}"
                return f"{o['ename']} in {where}: {o['evalue']}"
    return None


def run_notebook(nb: Path, out_dir: Path, data_dir: str, timeout: float) -> dict:
    executed = out_dir / nb.name
    executed.unlink(missing_ok=True)
    log = out_dir / f"{nb.stem}.log"
    cmd = [sys.executable, "-m", "papermill", str(nb), str(executed), "--cwd", str(nb.parent),
           "--kernel", "python3", "--no-progress-bar", "--log-level", "WARNING"]
    row = {"notebook": nb.stem, **measure(cmd, _env(data_dir), timeout, log)}
    row["error"] = (f"timed out after {timeout:.0f} s" if row["timed_out"] else
                    failure(executed, log) or (f"papermill exited {row['rc']}; see {log}"
                                               if row["rc"] else None))
    row["ok"] = row["error"] is None
    return row


def prepare(out_dir: Path, data_dir: str, timeout: float) -> dict:
    """Fill the teaching cache (``teaching.prepare()``) in a process of its own."""
    code = ("from medseg_kit import teaching; "
            "print('trained', teaching.prepare(progress=False), 'runs')")
    log = out_dir / "prepare.log"
    row = {"notebook": "teaching.prepare()",
           **measure([sys.executable, "-c", code], _env(data_dir), timeout, log)}
    row["error"] = (f"timed out after {timeout:.0f} s" if row["timed_out"] else
                    f"exited {row['rc']}: " + log.read_text()[-800:].strip()
                    if row["rc"] else None)
    row["ok"] = row["error"] is None
    return row


def _fits(row: dict) -> str:
    notes = []
    if row["wall_s"] > BINDER["wall_s"]:
        notes.append(f"over {BINDER['wall_s']} s")
    if row["kernel_peak_rss_mib"] > BINDER["rss_mib"]:
        notes.append(f"over {BINDER['rss_mib']} MiB")
    return ", ".join(notes)


def report(results: dict[str, list[dict]], out_dir: Path, meta: dict) -> str:
    lines = ["# Course run: every notebook at its defaults", "",
             f"{meta['when']} · {meta['cpus']} CPU(s) on the machine, each notebook in its "
             "own process with `OMP_NUM_THREADS=1` · command: "
             f"`{meta['command']}`", "",
             "CPU s: user + system of the kernel (sampled every 0.1 s) and of all (papermill "
             "and its kernel, from the OS's accounting). Peak RSS: the kernel, sampled every "
             "0.1 s. Binder's budget per notebook: "
             f"{BINDER['wall_s']} s wall, {BINDER['rss_mib']} MiB.", ""]
    for mode, rows in results.items():
        title = {"cold": "Cold: each notebook with an empty cache and data folder",
                 "warm": "Warm: teaching cache filled first (as Binder's postBuild does)"}[mode]
        lines += [f"## {title}", "",
                  "| notebook | result | wall s | CPU s kernel | CPU s all | peak RSS (MiB) "
                  "| note |",
                  "|---|---|---:|---:|---:|---:|---|"]
        for r in rows:
            result = "ok" if r["ok"] else "FAILED"
            note = r["error"] or _fits(r) if r["notebook"][:2].isdigit() else r["error"] or ""
            lines.append(f"| {r['notebook']} | {result} | {r['wall_s']:.1f} | "
                         f"{r['kernel_cpu_s'] or '-'} | {r['cpu_s']:.1f} | "
                         f"{r['kernel_peak_rss_mib'] or r['max_process_rss_mib']} | "
                         f"{(note or '').replace('|', '/')} |")
        lines.append("")
    text = "\n".join(lines)
    (out_dir / "course_report.md").write_text(text + "\n")
    (out_dir / "course_report.json").write_text(json.dumps({**meta, "results": results},
                                                           indent=1) + "\n")
    return text


def _stop(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through measure(), which stops its child


def main(argv=None) -> int:
    signal.signal(signal.SIGTERM, _stop)
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", choices=("warm", "cold", "both"), default="warm")
    p.add_argument("--only", nargs="*", default=None,
                   help="notebook numbers or names to run (default: all)")
    p.add_argument("--out", default=str(ROOT / "outputs" / "notebooks"))
    p.add_argument("--notebooks", default=str(NOTEBOOKS), help="the folder of notebooks")
    p.add_argument("--timeout", type=float, default=900, help="seconds per notebook")
    args = p.parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    notebooks = sorted(Path(args.notebooks).glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        notebooks = [n for n in notebooks if any(n.stem.startswith(o) for o in args.only)]
    if not notebooks:
        print(f"run_course: no notebook matches {args.only} in {args.notebooks}",
              file=sys.stderr)
        return 2
    meta = {"when": time.strftime("%Y-%m-%d %H:%M"), "cpus": os.cpu_count(),
            "command": "python tests/run_course.py " + " ".join(argv or sys.argv[1:]),
            "binder_budget": BINDER}
    modes = ["cold", "warm"] if args.cache == "both" else [args.cache]
    results: dict[str, list[dict]] = {}
    for mode in modes:
        rows = results.setdefault(mode, [])
        shared = os.environ.get("MEDSEG_DATA_DIR") or str(Path.home() / ".medseg_kit" / "data")
        if mode == "warm":
            print("run_course: filling the teaching cache (teaching.prepare())", flush=True)
            rows.append(prepare(out_dir, shared, args.timeout * 4))
            print(f"  {rows[-1]['wall_s']:.0f} s, {rows[-1]['cpu_s']:.0f} CPU s"
                  + (f"  FAILED: {rows[-1]['error']}" if not rows[-1]["ok"] else ""), flush=True)
        for nb in notebooks:
            fresh = tempfile.mkdtemp(prefix="medseg_cold_") if mode == "cold" else None
            print(f"run_course [{mode}]: {nb.name}", flush=True)
            try:
                rows.append(run_notebook(nb, out_dir, fresh or shared, args.timeout))
            finally:
                if fresh:
                    shutil.rmtree(fresh, ignore_errors=True)
            r = rows[-1]
            print(f"  {'ok' if r['ok'] else 'FAILED'}: {r['wall_s']:.0f} s wall, "
                  f"{r['cpu_s']:.0f} CPU s, kernel {r['kernel_cpu_s']:.0f} CPU s, "
                  f"peak {r['kernel_peak_rss_mib']} MiB"
                  + (f"\n  {r['error']}" if r["error"] else ""), flush=True)
    print()
    print(report(results, out_dir, meta))
    failed = [(m, r) for m, rows in results.items() for r in rows if not r["ok"]]
    for mode, r in failed:
        print(f"run_course: FAILED [{mode}] {r['notebook']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
