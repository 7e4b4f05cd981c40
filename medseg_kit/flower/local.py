"""The local Flower demo, and the functions a notebook (09) or a test drives.

:func:`run_flower` gives each site its own folder (the images the simulation gives it),
starts a SuperLink and one SuperNode per site on loopback, runs the app and stops them;
:func:`demo` does that beside the in-process simulation of the same config and prints
both in the simulation's results table. :func:`latency` times empty round trips.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from .. import course
from ..federated import RunConfig, train
from ..federated.run import CHECKPOINT, HISTORY, History
from .launch import LocalFederation
from .site import prepare_sites

#: the Flower app's folder (its ``pyproject.toml``: components and run config)
APP_DIR = Path(__file__).resolve().parent / "app"

#: the demo's setting: the course's teaching UNet at 64 px, three IID sites, two rounds
#: of sflv2, one batch per site turn (every batch costs two Flower round trips)
FLOWER_DEMO = replace(course.BASE, strategy="sflv2", n_images=48, rounds=2, batch_size=16,
                      partition="iid", device="cpu")


def run_flower(config: RunConfig, work: str | Path, *, resume: bool = False,
               min_sites: int = 1, reply_timeout: float = 300.0, tuned: bool = True,
               message_log: bool = False, verbose: bool = True, timeout: float | None = None,
               during: Callable[[LocalFederation, Path], None] | None = None) -> dict:
    """Run ``config`` on a local Flower federation (one SuperNode per site).

    Writes under ``work``: ``sites/site<i>`` (each site's data), ``config.json``,
    ``flower/`` (the run: ``history.json``, ``checkpoint.pt``, ``config.json``,
    ``exchanges.json``), ``federation/`` (Flower's home and the processes' logs) and, with
    ``message_log``, ``messages/`` (every message's arrays).

    ``during(federation, work)``, if given, runs in a thread while the app runs (e.g. to
    stop a SuperNode). Returns ``out`` (the run folder), ``history`` (a
    :class:`~medseg_kit.federated.run.History`, or None), ``wall`` (seconds), ``log`` and
    ``returncode``.
    """
    work = Path(work).resolve()
    folders = sorted((work / "sites").glob("site*")) if resume else []
    if not folders:
        folders = prepare_sites(config, work / "sites")
    (work / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    out = work / "flower"
    run_config = {"config": str(work / "config.json"), "out": str(out), "resume": resume,
                  "min-sites": min_sites, "reply-timeout": reply_timeout,
                  "message-log": str(work / "messages") if message_log else ""}
    nodes = [f'site={i} data="{f}"' for i, f in enumerate(folders)]
    t0 = time.perf_counter()
    with LocalFederation(work / "federation", nodes, tuned=tuned, verbose=verbose) as fed:
        helper = None
        if during is not None:
            helper = threading.Thread(target=during, args=(fed, work), daemon=True)
            helper.start()
        result = fed.run(APP_DIR, run_config, timeout=timeout)
        if helper is not None:
            helper.join(timeout=5)
    wall = time.perf_counter() - t0
    history = (History.from_json((out / HISTORY).read_text())
               if (out / HISTORY).is_file() else None)
    return {"out": out, "history": history, "wall": wall, "log": result.stdout,
            "returncode": result.returncode, "checkpoint": out / CHECKPOINT}


def demo(out: str | Path = "outputs/flower", config: RunConfig = FLOWER_DEMO, *,
         verbose: bool = True) -> dict:
    """``make flower-demo``: the simulation and the Flower deployment of ``config`` on the
    same sites; prints both in the simulation's results table. Returns the two histories,
    their wall times, the table and the folders."""
    from ..demo import results_table, summarize

    out = Path(out).resolve()
    t0 = time.perf_counter()
    sim, _ = train(config, out / "simulation", progress=verbose)
    sim_wall = time.perf_counter() - t0
    flower = run_flower(config, out, verbose=verbose)
    if flower["history"] is None or len(flower["history"].rows()) < config.rounds:
        raise RuntimeError(f"the Flower run did not finish (exit code "
                           f"{flower['returncode']}); see {out / 'federation' / 'logs'}")
    rows = []
    for name, hist in (("sflv2 (simulation)", sim), ("sflv2 (Flower)", flower["history"])):
        rows.append({**hist.final(), "strategy": name, "seed": config.seed})
    table = results_table(summarize(rows, [r["strategy"] for r in rows]))
    exchanges = json.loads((flower["out"] / "exchanges.json").read_text())["seconds"]
    report = {"simulation": sim, "flower": flower["history"], "simulation_wall": sim_wall,
              "flower_wall": flower["wall"], "table": table, "out": out,
              "exchanges": exchanges}
    if verbose:
        print()
        print(table)
        print()
        print(f"wall time: simulation {sim_wall:.1f} s, Flower {flower['wall']:.1f} s "
              f"(with starting the SuperLink and SuperNodes); {len(exchanges)} round trips, "
              f"median {sorted(exchanges)[len(exchanges) // 2]:.2f} s each")
        print(f"runs: {out / 'simulation'}, {flower['out']}; logs: "
              f"{out / 'federation' / 'logs'}")
    return report


def latency(work: str | Path, n: int = 6, *, tuned: bool = True, torch: bool = True,
            verbose: bool = False) -> list[float]:
    """Seconds of ``n`` empty round trips between the ServerApp and one SuperNode
    (``torch``: the ClientApp imports PyTorch, as every training message does)."""
    work = Path(work).resolve()
    with LocalFederation(work / "federation", ["site=0"], tuned=tuned,
                         verbose=verbose) as fed:
        fed.run(APP_DIR, {"ping": n, "ping-torch": torch, "out": str(work)})
    return json.loads((work / "latency.json").read_text())["seconds"]
