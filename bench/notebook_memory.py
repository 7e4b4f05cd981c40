"""Wall time and peak memory of a notebook run with its default parameters.

Runs the notebook with papermill and samples the resident memory of the kernel (and every
other child process) every 0.2 s. Binder gives 2 GB; the teaching notebooks must stay
well under it.

    python bench/notebook_memory.py notebooks/00_quickstart.ipynb [-p NAME VALUE ...]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import papermill as pm
import psutil


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("notebook", nargs="?", default="notebooks/00_quickstart.ipynb")
    p.add_argument("-p", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    args = p.parse_args()
    params = {k: type_of(v) for k, v in args.p}
    me = psutil.Process()
    peak = {"rss": 0}
    done = threading.Event()

    def sample():
        while not done.is_set():
            total = 0
            for child in me.children(recursive=True):
                try:
                    total = max(total, child.memory_info().rss)
                except psutil.Error:
                    pass
            peak["rss"] = max(peak["rss"], total)
            time.sleep(0.2)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        nb = Path(args.notebook)
        pm.execute_notebook(str(nb), str(Path(tmp) / nb.name), parameters=params,
                            cwd=str(nb.parent), kernel_name="python3", progress_bar=False)
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    print(f"{args.notebook} {params or '(defaults)'}: {wall:.1f} s, peak kernel RSS "
          f"{peak['rss'] / 2**20:.0f} MiB")


def type_of(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return v


if __name__ == "__main__":
    main()
