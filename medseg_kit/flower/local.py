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

    Writes under ``work``: ``sites/site<i>`` (each site's data), ``flower.json`` (the
    config), ``flower/`` (the run: ``history.json``, ``checkpoint.pt``, ``config.json``,
    ``exchanges.json``), ``federation/`` (Flower's home and the processes' logs) and, with
    ``message_log``, ``messages/`` (every message's arrays).

    ``during(federation, work)``, if given, runs in a thread while the app runs (e.g. to
    stop a SuperNode). Returns what :func:`run_on` returns; ``wall`` counts starting and
    stopping the SuperLink and SuperNodes too.
    """
    work = Path(work).resolve()
    folders = sorted((work / "sites").glob("site*")) if resume else []
    if not folders:
        folders = prepare_sites(config, work / "sites")
    t0 = time.perf_counter()
    with LocalFederation(work / "federation", node_configs(folders), tuned=tuned,
                         verbose=verbose) as fed:
        result = run_on(fed, config, work / "flower", resume=resume, min_sites=min_sites,
                        reply_timeout=reply_timeout, timeout=timeout,
                        message_log=work / "messages" if message_log else None,
                        during=None if during is None else lambda f: during(f, work))
    return {**result, "wall": time.perf_counter() - t0}


def node_configs(folders: list[Path]) -> list[str]:
    """One SuperNode's ``--node-config`` per site folder: ``site=<i> data="<folder>"``."""
    return [f'site={i} data="{Path(f).resolve()}"' for i, f in enumerate(folders)]


def run_on(fed: LocalFederation, config: RunConfig, out: str | Path, *,
           resume: bool = False, min_sites: int = 1, reply_timeout: float = 300.0,
           message_log: str | Path | None = None, timeout: float | None = None,
           during: Callable[[LocalFederation], None] | None = None) -> dict:
    """One ``flwr run`` of ``config`` on the started federation ``fed`` (whose SuperNodes
    hold the sites' data: :func:`node_configs`); several runs may follow each other on
    the same federation, or run at the same time (from threads). The run's folder is
    ``out``, its config ``out`` + ``.json``; ``message_log``: a folder for every message's
    arrays.

    ``during(fed)``, if given, runs in a thread while the app runs. Returns ``out``,
    ``history`` (a :class:`~medseg_kit.federated.run.History`, or None), ``checkpoint``,
    ``exchanges`` (seconds of each round trip of every run into ``out``), ``wall``
    (seconds of ``flwr run``), ``log`` and ``returncode``.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    config_file = out.with_name(out.name + ".json")
    config_file.write_text(json.dumps(config.to_dict(), indent=1))
    run_config = {"config": str(config_file), "out": str(out), "resume": resume,
                  "min-sites": min_sites, "reply-timeout": reply_timeout,
                  "message-log": str(Path(message_log).resolve()) if message_log else ""}
    t0 = time.perf_counter()
    helper = None
    if during is not None:
        helper = threading.Thread(target=during, args=(fed,), daemon=True)
        helper.start()
    result = fed.run(APP_DIR, run_config, timeout=timeout,
                     log=fed.logs / f"run-{out.name}.log")
    if helper is not None:
        helper.join(timeout=5)
    wall = time.perf_counter() - t0
    history = (History.from_json((out / HISTORY).read_text())
               if (out / HISTORY).is_file() else None)
    exchanges = sorted(out.glob("exchanges*.json"))
    seconds = [t for f in exchanges for t in json.loads(f.read_text())["seconds"]]
    return {"out": out, "history": history, "wall": wall, "log": result.stdout,
            "exchanges": seconds, "returncode": result.returncode,
            "checkpoint": out / CHECKPOINT}


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
    for name, hist in ((f"{config.strategy} (simulation)", sim),
                       (f"{config.strategy} (Flower)", flower["history"])):
        rows.append({**hist.final(), "strategy": name, "seed": config.seed})
    table = results_table(summarize(rows, [r["strategy"] for r in rows]))
    exchanges = flower["exchanges"]
    report = {"simulation": sim, "flower": flower["history"], "simulation_wall": sim_wall,
              "flower_wall": flower["wall"], "table": table, "out": out,
              "exchanges": exchanges}
    if verbose:
        print()
        print(table)
        print()
        print(exchange_summary(exchanges))
        rounds = [sum(r["seconds"] for r in h.rows()) for h in (sim, flower["history"])]
        print(f"wall time: simulation {sim_wall:.1f} s ({rounds[0]:.1f} s in rounds), "
              f"Flower {flower['wall']:.1f} s ({rounds[1]:.1f} s in rounds; the rest: "
              "starting and stopping the SuperLink, SuperNodes and ServerApp, and the "
              "sites' first message)")
        print(f"runs: {out / 'simulation'}, {flower['out']}; logs: "
              f"{out / 'federation' / 'logs'}")
    return report


def exchange_summary(seconds: list[float]) -> str:
    """One line on the latency per exchange (one round trip ServerApp -> SuperNode ->
    ServerApp, the message's work at the site included)."""
    if not seconds:
        return "latency per exchange: no round trip was timed"
    s = sorted(seconds)
    return (f"latency per exchange (ServerApp -> SuperNode -> ServerApp): {len(s)} round "
            f"trips, min {s[0]:.2f} s, median {s[len(s) // 2]:.2f} s, mean "
            f"{sum(s) / len(s):.2f} s, max {s[-1]:.2f} s")


def latency(work: str | Path, n: int = 6, *, tuned: bool = True, torch: bool = True,
            verbose: bool = False) -> list[float]:
    """Seconds of ``n`` empty round trips between the ServerApp and one SuperNode
    (``torch``: the ClientApp imports PyTorch, as every training message does)."""
    work = Path(work).resolve()
    with LocalFederation(work / "federation", ["site=0"], tuned=tuned,
                         verbose=verbose) as fed:
        fed.run(APP_DIR, {"ping": n, "ping-torch": torch, "out": str(work)})
    return json.loads((work / "latency.json").read_text())["seconds"]
