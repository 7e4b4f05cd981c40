"""Notebook 09's helpers: the Flower deployment as hospitals see it, and a record of the
local demo that the notebook reads (live, or from a recording that ships in the repo).

* :func:`roles` and :func:`plot_deployment`: who runs what (the SuperLink at the
  coordinating centre, one SuperNode per hospital that only connects out, the ServerApp
  with the server part, the ClientApp with a site's front and back parts) and on which
  ports (:data:`PORTS`, Flower 1.42's defaults; :func:`flower_ports` reads them from the
  installed Flower);
* :func:`record`: the simulation and the Flower deployment of one config on the same sites
  (:func:`medseg_kit.flower.run_flower`, every message logged), with the peak memory of
  every process the run starts (:class:`MemoryWatch`) and a check of every message's
  arrays against the sites' images and masks (:func:`raw_in_messages`). The result is
  plain JSON (:func:`save`, :func:`load`); ``python -m medseg_kit.deployment`` writes the
  recording ``notebooks/recorded/flower_demo.json``;
* tables and figures of a record for the notebook (:func:`rounds`, :func:`results_table`,
  :func:`plot_rounds`, :func:`plot_exchanges`, :func:`memory_rows`).

Flower is imported only by :func:`record` and :func:`flower_ports`: everything else works
on a record without Flower installed (as on Binder).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .federated.config import RunConfig
from .federated.run import GLOBAL, History
from .units import MIB

#: the Flower release the kit's app is tested against (the ``flower`` extra pins it)
FLOWER_VERSION = "1.42.0"
#: Flower 1.42's default ports (``flower-superlink --help``, ``flower-supernode --help``;
#: ``flwr/supercore/constant.py``). The SuperLink serves the Fleet API (SuperNodes), the
#: Control API (``flwr run``) and the Runtime API (ServerApp) on one HTTPS port; a
#: SuperNode serves its Runtime API to its own ClientApp processes on loopback only.
PORTS = {"superlink": 8000, "supernode": 9094}
#: the separate gRPC ports of earlier releases (Fleet 9092, Control 9093): 1.42 still
#: accepts ``--fleet-api-address`` / ``--control-api-address`` but marks them deprecated
LEGACY_PORTS = {"fleet": 9092, "control": 9093}
#: Binder's limits (1 CPU): memory, and the course's time budget per notebook
BINDER = {"memory_mib": 2048, "wall_s": 180}
#: where the recording ships, and the command that writes it
RECORDING = Path(__file__).resolve().parents[1] / "notebooks" / "recorded" / "flower_demo.json"
RECORD_COMMAND = ("OMP_NUM_THREADS=1 python -m medseg_kit.deployment "
                  "--save notebooks/recorded/flower_demo.json")


def flower_installed() -> str | None:
    """The version of the Flower that imports here, or None."""
    try:
        import flwr
    except ImportError:
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("flwr")
    except PackageNotFoundError:
        return getattr(flwr, "__version__", "unknown")


def flower_ports() -> dict[str, int] | None:
    """The default ports read from the installed Flower's source (None without Flower)."""
    if flower_installed() is None:
        return None
    from flwr.common import constant as old
    from flwr.supercore import constant as new

    return {"superlink": int(new.SUPERLINK_UVICORN_DEFAULT_PORT),
            "supernode": int(new.SUPERNODE_UVICORN_DEFAULT_PORT),
            "fleet": int(old.FLEETAPI_GRPC_RERE_PORT), "control": int(old.CONTROL_API_PORT)}


# ------------------------------------------------------------------ who runs what
def _parts(config: RunConfig) -> dict[str, list[str]]:
    """The stage names of the site's front, the server's part and the site's back."""
    from .models import create_model
    from .split import resolve_cut

    net = create_model(config.model, width=config.width)
    names = [s.name for s in net.specs]
    front, back = resolve_cut(net, config.cut, config.split)
    return {"front": names[:front], "server": names[front:back], "back": names[back:]}


def _span(names: Sequence[str]) -> str:
    return ", ".join(names) if len(names) <= 2 else f"{names[0]} … {names[-1]}"


def roles(config: RunConfig) -> list[dict]:
    """One row per Flower component: where it runs, who starts it, what it computes of
    ``config``'s model, and its network connections (Flower 1.42's default ports)."""
    p, link, node = _parts(config), PORTS["superlink"], PORTS["supernode"]
    return [
        {"component": "SuperLink", "where": "coordinating centre",
         "started by": "its IT (`flower-superlink`), long-running",
         "computes": "nothing: stores and forwards messages",
         "network": f"listens on {link} (HTTPS): SuperNodes, `flwr run`, the ServerApp"},
        {"component": "ServerApp", "where": "coordinating centre",
         "started by": "the SuperLink (its SuperExec), for each `flwr run`",
         "computes": f"the server part ({_span(p['server'])}), its optimizer, FedAvg",
         "network": f"connects to the SuperLink's {link}"},
        {"component": "SuperNode", "where": "each hospital, one per site",
         "started by": "the hospital's IT (`flower-supernode`), long-running",
         "computes": "nothing: pulls messages, starts the ClientApp",
         "network": f"connects out to the SuperLink's {link}; serves {node} on "
                    "127.0.0.1 to its own ClientApp; no inbound port"},
        {"component": "ClientApp", "where": "each hospital",
         "started by": "the SuperNode (its SuperExec), for every message",
         "computes": f"front ({_span(p['front'])}) and back ({_span(p['back'])}, loss), "
                     "its optimizer; reads the site's images",
         "network": f"connects to its SuperNode's {node} on 127.0.0.1"},
    ]


def plot_deployment(config: RunConfig, sites: int | None = None):
    """A diagram of the deployment: the coordinating centre (SuperLink, ServerApp), one
    box per hospital (SuperNode, ClientApp, data that stays), the outbound connections and
    what crosses them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    sites = sites or config.sites
    p = _parts(config)
    fig, ax = plt.subplots(figsize=(10, 1.9 + 1.5 * sites))
    height = 1.5 * sites
    ax.set(xlim=(0, 10), ylim=(-0.4, height + 0.3))
    ax.axis("off")

    def box(x, y, w, h, text, color, size=9, weight="normal"):
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", fc=color,
                                    ec="0.3", lw=1))
        ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=size,
                weight=weight)

    mid = height / 2
    box(0.1, mid - 1.3, 3.1, 2.6, "", "#eef3fb")
    ax.text(1.65, mid + 1.1, "coordinating centre", ha="center", weight="bold")
    box(0.35, mid + 0.05, 2.6, 0.8, f"SuperLink\nHTTPS :{PORTS['superlink']} "
        "(Fleet, Control, Runtime)", "#c9dcf5")
    box(0.35, mid - 1.05, 2.6, 0.85, f"ServerApp\nserver part: {_span(p['server'])}\n"
        "its optimizer · FedAvg", "#dbe8f9", size=8)
    for i in range(sites):
        y = height - 1.5 * (i + 1) + 0.1
        box(5.6, y, 4.3, 1.3, "", "#f3f8ee")
        ax.text(7.75, y + 1.15, f"hospital {i}", ha="center", weight="bold", fontsize=9)
        box(5.75, y + 0.15, 1.45, 0.8, f"SuperNode\nsite={i}", "#d6ebc8", size=8)
        box(7.3, y + 0.15, 1.45, 0.8, f"ClientApp\nfront {_span(p['front'])}\n"
            f"back {_span(p['back'])}", "#e3f1d8", size=7)
        box(8.85, y + 0.15, 0.95, 0.8, "images,\nmasks\n(stay)", "#fbe3d6", size=7)
        ax.add_patch(FancyArrowPatch((5.7, y + 0.55), (3.0, mid + 0.45),
                                     arrowstyle="-|>", mutation_scale=12, color="0.25"))
    ax.text(4.4, mid + 0.75 + 0.25 * (sites > 1), "outbound HTTPS\n(site → centre)",
            ha="center", fontsize=8, style="italic")
    ax.text(5.0, -0.3, "crosses: activations and gradients at the cut, the client part's "
            "weights, BatchNorm statistics, overlap counts  ·  never: an image or a mask",
            ha="center", fontsize=8)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ memory
_ROLES = (("flower-superlink", "SuperLink"), ("flower-supernode", "SuperNode"),
          ("flower-superexec", "SuperExec"), ("flwr-serverapp", "ServerApp"),
          ("flwr-clientapp", "ClientApp"))


def _role(proc, me: int) -> str | None:
    """What ``proc`` is in a Flower run (None: a zombie, nothing to count). Raises
    ``psutil.Error`` when it is gone."""
    if proc.pid == me:
        return "this process (the notebook)"
    args = proc.cmdline()
    if not args:
        return None
    cmd = " ".join(args)
    for key, name in _ROLES:
        if key in cmd:
            return name
    if "flwr" in cmd and " run " in f"{cmd} ":
        return "flwr run"
    script = next((a for a in args[1:] if not a.startswith("-")), args[0])
    return f"other ({Path(script).name})"


class MemoryWatch:
    """Peak memory of this process and every process it starts (their descendants),
    sampled every ``interval`` seconds in a thread: ``with MemoryWatch() as m: ...``.

    Two sums per sample: resident memory (RSS; pages shared between processes, such as
    PyTorch's libraries, count once per process: an upper bound) and proportional memory
    (PSS; a shared page is split between its processes: what the machine, or Binder's
    memory limit, really holds). After the block: ``peak_pss_mib``, ``peak_rss_mib``,
    ``by_role`` (each role's largest PSS sum, MiB), ``peak_processes``."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.peak_pss = self.peak_rss = self.peak_processes = 0
        self.role_peak: dict[str, int] = {}
        self._done = threading.Event()

    def sample(self) -> None:
        import psutil

        me = psutil.Process()
        try:
            family = [me, *me.children(recursive=True)]
        except psutil.Error:
            family = [me]
        pss = rss = counted = 0
        by: dict[str, int] = {}
        for proc in family:
            try:  # what it is first: a process that exits in between is not counted
                role = _role(proc, me.pid)
                info = proc.memory_full_info() if role else None
            except (psutil.Error, OSError):
                continue
            if info is None:
                continue
            counted += 1
            pss += getattr(info, "pss", info.rss)
            rss += info.rss
            by[role] = by.get(role, 0) + getattr(info, "pss", info.rss)
        self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
        self.peak_processes = max(self.peak_processes, counted)
        for role, v in by.items():
            self.role_peak[role] = max(self.role_peak.get(role, 0), v)

    def _loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def summary(self) -> dict:
        return {"peak_pss_mib": round(self.peak_pss / MIB), "peak_rss_mib":
                round(self.peak_rss / MIB), "peak_processes": self.peak_processes,
                "by_role": {k: round(v / MIB) for k, v in sorted(self.role_peak.items())}}


# ------------------------------------------------------------------ what crossed
def raw_planes(sites: Path) -> np.ndarray:
    """Every image channel (scaled to [0, 1], as the model sees it) and every mask of every
    site folder, as a stack of H x W planes."""
    from .data.base import read_cache
    from .flower.site import TEST_FILE, TRAIN_FILE

    planes = []
    for folder in sorted(Path(sites).glob("site*")):
        for name in (TRAIN_FILE, TEST_FILE):
            d = read_cache(folder / name)
            planes += [d.images[..., c].astype(np.float32) / 255.0
                       for c in range(d.images.shape[-1])]
            planes.append(d.masks.astype(np.float32))
    return np.concatenate([p.reshape(-1, *p.shape[-2:]) for p in planes])


def carries_raw(array: np.ndarray, raw: np.ndarray) -> bool:
    """True when some H x W plane of ``array`` equals (to 1e-6) an image channel or a mask."""
    h, w = raw.shape[-2:]
    if array.ndim < 2 or array.shape[-2:] != (h, w):
        return False
    planes = array.reshape(-1, h, w).astype(np.float32)
    for i in range(0, len(raw), 64):
        diff = np.abs(planes[:, None] - raw[None, i:i + 64]).reshape(len(planes), -1, h * w)
        if (diff.max(-1) < 1e-6).any():
            return True
    return False


def raw_in_messages(messages: Path, sites: Path) -> dict:
    """Checks every array of every logged message (``run_flower(message_log=True)``)
    against every image channel and mask of the sites.

    Returns the counts (``raw``: arrays equal to an image or a mask, must be 0;
    ``full_resolution``: arrays of the images' height and width, the ones that could have
    been); ``check_works``: the check finds a mask fed to it; and ``contents``: one entry
    per kind of content (message kind, direction ``out`` = server to site or ``in``, the
    named tensors it carries with a shape, the number of model weight arrays), with how
    many messages carried it and their bytes."""
    raw = raw_planes(sites)
    contents: dict[str, dict] = {}
    n_arrays = full = found = n_messages = 0
    for f in sorted(Path(messages).glob("*.npz")):
        parts = f.stem.split("-")  # <n>-<kind>-site<i>-<out|in> (site -1: not known yet)
        n_messages += 1
        with np.load(f) as z:
            arrays = {name: z[name] for name in z.files}
        tensors = {k: list(a.shape) for k, a in arrays.items() if not k.startswith("stages.")}
        weights = sum(k.startswith("stages.") for k in arrays)
        if len(tensors) > 4:  # e.g. BatchNorm statistics: one entry per layer
            tensors = {f"{len(tensors)} statistics": []}
        key = f"{parts[1]} {parts[-1]} {sorted(tensors)} {weights}"
        c = contents.setdefault(key, {"message": parts[1], "direction": parts[-1],
                                      "tensors": tensors, "weights": weights,
                                      "messages": 0, "bytes": 0})
        c["messages"] += 1
        c["bytes"] += sum(a.nbytes for a in arrays.values())
        for a in arrays.values():
            n_arrays += 1
            full += a.shape[-2:] == raw.shape[-2:]
            found += carries_raw(a, raw)
    return {"messages": n_messages, "arrays": n_arrays, "full_resolution": int(full),
            "raw": int(found), "check_works": carries_raw(raw[-1:], raw),
            "contents": list(contents.values())}


# ------------------------------------------------------------------ the record
def record(out: str | Path | None = None, config: RunConfig | None = None, *,
           verbose: bool = False) -> dict:
    """The simulation and the Flower deployment of ``config`` (default: ``make
    flower-demo``'s :data:`~medseg_kit.flower.FLOWER_DEMO`) on the same sites, measured.

    Runs :func:`medseg_kit.federated.train` in this process, then
    :func:`medseg_kit.flower.run_flower` (a SuperLink and one SuperNode per site on
    loopback, insecure; every message logged under ``out/messages``), each under a
    :class:`MemoryWatch`; checks every message for raw data. Returns a JSON-able dict:
    both histories, wall seconds, every round trip's seconds, memory, the message check,
    the machine. ``out`` defaults to a fresh temporary folder (whose message log is
    deleted once checked)."""
    from .federated import train
    from .federated.run import resolve_data
    from .flower import FLOWER_DEMO, run_flower

    config = config or FLOWER_DEMO
    load = round(os.getloadavg()[0], 2)  # other work on the machine slows every exchange
    temporary = out is None
    out = Path(out or tempfile.mkdtemp(prefix="medseg_flower_")).resolve()
    data = resolve_data(config, progress=verbose)  # synthesized once, before the clocks
    with MemoryWatch() as sim_mem:
        t0 = time.perf_counter()
        sim, _ = train(config, out / "simulation", data=data, progress=verbose)
        sim_wall = time.perf_counter() - t0
    del data
    with MemoryWatch() as mem:
        fl = run_flower(config, out, message_log=True, verbose=verbose)
    if fl["history"] is None or len(fl["history"].rows()) < config.rounds:
        raise RuntimeError(f"the Flower run did not finish (exit code {fl['returncode']}); "
                           f"see {out / 'federation' / 'logs'}")
    exchanges = json.loads((fl["out"] / "exchanges.json").read_text())["seconds"]
    checked = raw_in_messages(out / "messages", out / "sites")
    if temporary:  # every message's arrays: tens of MiB nobody will read again
        shutil.rmtree(out / "messages", ignore_errors=True)
    return {"flwr": flower_installed(), "config": config.to_dict(),
            "simulation": json.loads(sim.to_json()),
            "flower": json.loads(fl["history"].to_json()),
            "simulation_wall": round(sim_wall, 2), "flower_wall": round(fl["wall"], 2),
            "exchanges": [round(s, 3) for s in exchanges],
            "memory": {**mem.summary(), "simulation_pss_mib": sim_mem.summary()[
                "peak_pss_mib"]},
            "messages": checked,
            "machine": {"cpus": os.cpu_count(), "load_before": load,
                        "load_after": round(os.getloadavg()[0], 2), "omp_threads":
                        os.environ.get("OMP_NUM_THREADS"), "python": platform.python_version(),
                        "when": time.strftime("%Y-%m-%d %H:%M")},
            "command": RECORD_COMMAND, "out": str(out)}


def save(rec: Mapping, path: str | Path) -> Path:
    """Write a record as JSON (the folder of the run is left out: it was temporary)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: v for k, v in rec.items() if k != "out"}, indent=1,
                               allow_nan=False) + "\n")
    return path


def load(path: str | Path = RECORDING) -> dict:
    """A record written by :func:`save` (default: the recording that ships)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Flower recording at {path}; write one with "
                                f"`{RECORD_COMMAND}`")
    return json.loads(path.read_text())


def histories(rec: Mapping) -> tuple[History, History]:
    """The record's two histories: ``(simulation, flower)``."""
    return (History.from_json(json.dumps(rec["simulation"])),
            History.from_json(json.dumps(rec["flower"])))


def fits_binder(rec: Mapping) -> bool:
    """Whether a recorded run fits Binder: its peak memory (all processes) under
    Binder's 2 GB and its wall time under the course's budget for a notebook."""
    return (rec["memory"]["peak_pss_mib"] < BINDER["memory_mib"]
            and rec["flower_wall"] < BINDER["wall_s"])


def decide(live: bool | None, recorded: Mapping, config: RunConfig) -> tuple[bool, str]:
    """Whether the notebook runs ``config`` live, and why.

    ``live`` True or False is obeyed (True needs Flower). ``None`` decides: without
    Flower, read the ``recorded`` run; with Flower, run live when ``config`` is not the
    recorded one, and otherwise only if the recorded run fits Binder's memory and the
    course's time budget for a notebook."""
    have = flower_installed()
    same = config.to_dict() == recorded["config"]
    other = "" if same else " (of the demo's defaults, not these parameters)"
    if live and have is None:
        raise RuntimeError("LIVE = True needs Flower: pip install 'medseg_kit[flower]'")
    if live is not None:
        return live, f"LIVE = {live}" + ("" if live else f": reading the recorded run{other}")
    if have is None:
        return False, f"Flower is not installed here: reading the recorded run{other}"
    if not same:
        return True, "these parameters differ from the recorded run's"
    mem, wall = recorded["memory"]["peak_pss_mib"], recorded["flower_wall"]
    fits = fits_binder(recorded)
    return fits, (f"the recorded run peaked at {mem} MiB (all its processes together) and "
                  f"took {wall:.0f} s on {recorded['machine']['cpus']} cores; Binder gives "
                  f"{BINDER['memory_mib']} MiB, the course {BINDER['wall_s']} s a notebook: "
                  + ("it fits, so it runs live" if fits else "reading the recorded run"))


# ------------------------------------------------------------------ tables, figures
def rounds(rec: Mapping) -> list[dict]:
    """Per round, both runs side by side: Dice, train loss, bytes (all sites), seconds."""
    sim, fl = histories(rec)
    out = []
    for a, b in zip(sim.rows(GLOBAL), fl.rows(GLOBAL), strict=True):
        out.append({"round": a["round"], "dice_sim": a["dice"], "dice_flower": b["dice"],
                    "loss_sim": a["train_loss"], "loss_flower": b["train_loss"],
                    "bytes_sim": a["bytes_up"] + a["bytes_down"],
                    "bytes_flower": b["bytes_up"] + b["bytes_down"],
                    "seconds_sim": a["seconds"], "seconds_flower": b["seconds"]})
    return out


def agreement(a: History, b: History) -> dict:
    """How far two histories of one config are apart: the largest Dice, IoU and training
    loss difference over every (round, site) row, and whether every byte count is equal."""
    pairs = list(zip(a.records, b.records, strict=True))
    diff = {k: max((abs(x[k] - y[k]) for x, y in pairs if not math.isnan(x[k])),
                   default=0.0) for k in ("dice", "iou", "train_loss")}
    same = all((x["round"], x["site"], x["bytes_up"], x["bytes_down"]) ==
               (y["round"], y["site"], y["bytes_up"], y["bytes_down"]) for x, y in pairs)
    return {"max_dice_diff": diff["dice"], "max_iou_diff": diff["iou"],
            "max_loss_diff": diff["train_loss"], "bytes_equal": same}


def results_table(rec: Mapping) -> str:
    """``make flower-demo``'s table (the simulation's results table) of a record."""
    from .demo import results_table as table
    from .demo import summarize

    sim, fl = histories(rec)
    rows = [{**h.final(), "strategy": f"{h.config['strategy']} ({name})",
             "seed": h.config["seed"]} for name, h in (("simulation", sim), ("Flower", fl))]
    return table(summarize(rows, [r["strategy"] for r in rows]))


def _batches(n: int, batch_size: int) -> int:
    """Batches of ``n`` images (a final batch of one image is dropped, as in training)."""
    full, rest = divmod(n, batch_size)
    return full + (rest > 1 or (rest == 1 and n == 1))


def exchanges_per_round(config: RunConfig, n_train: Sequence[int]) -> int:
    """Round trips of one round through Flower with ``n_train`` training images at each
    site. A site's turn of ``B`` batches costs ``2B + 1`` in the U-shaped split (the client
    part rides on the first request, the front's gradient on the next batch's request, the
    last reply returns the client part), ``B + 1`` in the vanilla split (the server
    computes the loss) and 1 in ``fl``; then one ``calibrate`` and one ``evaluate`` per
    site. (``sflv1`` and ``fl`` send to all sites at once, ``sflv2`` one site at a time.)"""
    def turn(n: int) -> int:
        if config.strategy == "fl":
            return 1
        b = _batches(n, config.batch_size) * config.local_epochs
        return (b if config.split == "vanilla" else 2 * b) + 1

    return sum(turn(n) + 2 for n in n_train)


def expected_exchanges(rec: Mapping) -> int:
    """Round trips the record's run needed: a ``hello`` per site, then every round's."""
    c = RunConfig.from_dict(rec["config"])
    sim, _ = histories(rec)
    n_train = [r["n_train"] for r in sim.records if r["round"] == 0 and r["site"] != GLOBAL]
    return c.sites + c.rounds * exchanges_per_round(c, n_train)


def projected(config: RunConfig, seconds_per_exchange: float) -> dict:
    """What ``config`` would cost through Flower at ``seconds_per_exchange``: its sites'
    training images (the run's own partition), round trips per round and for the run, and
    the seconds that those round trips alone take."""
    from .federated.run import Run

    n_train = [s.n_train for s in Run(config, progress=False).sites]
    per_round = exchanges_per_round(config, n_train)
    total = config.sites + config.rounds * per_round
    return {"n_train": n_train, "batches": [_batches(n, config.batch_size) for n in n_train],
            "per_round": per_round, "total": total,
            "round_seconds": per_round * seconds_per_exchange,
            "run_seconds": total * seconds_per_exchange}


def plot_rounds(rec: Mapping):
    """Dice and training loss per round, simulation against Flower."""
    import matplotlib.pyplot as plt

    rows = rounds(rec)
    r = [x["round"] for x in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, key, label in zip(axes, ("dice", "loss"), ("test Dice", "train loss"),
                              strict=True):
        ax.plot(r, [x[f"{key}_sim"] for x in rows], "o-", lw=3, alpha=0.5,
                label="simulation (one process)")
        ax.plot(r, [x[f"{key}_flower"] for x in rows], "x--", color="k",
                label="Flower (one process per site)")
        ax.set(xlabel="round", ylabel=label, xticks=r)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def exchange_kinds(rec: Mapping) -> list[str]:
    """The message kind of each of the record's round trips, in order: the ``hello``s,
    then per round the training turns, the ``calibrate``s and the ``evaluate``s (replies
    to messages sent at once come in any order, but kind by kind)."""
    c = RunConfig.from_dict(rec["config"])
    sim, _ = histories(rec)
    out = ["hello"] * c.sites
    for r in range(c.rounds):
        n_train = [x["n_train"] for x in sim.records if x["round"] == r and x["site"] != GLOBAL]
        train = exchanges_per_round(c, n_train) - 2 * len(n_train)
        out += ["train"] * train + ["calibrate"] * len(n_train) + ["evaluate"] * len(n_train)
    return out


def medians(rec: Mapping) -> dict[str, float]:
    """The median seconds of the record's round trips, by message kind and over all."""
    kinds = exchange_kinds(rec)
    if len(kinds) != len(rec["exchanges"]):
        kinds = ["train"] * len(rec["exchanges"])
    out = {k: float(np.median([s for s, x in zip(rec["exchanges"], kinds, strict=True)
                               if x == k])) for k in dict.fromkeys(kinds)}
    return {**out, "all": float(np.median(rec["exchanges"]))}


def plot_exchanges(rec: Mapping):
    """Every round trip's seconds, in the order they happened, by message kind, and the
    median."""
    import matplotlib.pyplot as plt

    s, kinds = rec["exchanges"], exchange_kinds(rec)
    colors = {"hello": "#999999", "train": "#6c8ebf", "calibrate": "#d79b00",
              "evaluate": "#82b366"}
    fig, ax = plt.subplots(figsize=(9, 2.8))
    if len(kinds) != len(s):  # a run with a dropped site: no kinds
        kinds = ["train"] * len(s)
    x = np.arange(1, len(s) + 1)
    for kind, color in colors.items():
        pick = [i for i, k in enumerate(kinds) if k == kind]
        if pick:
            ax.bar(x[pick], np.asarray(s)[pick], color=color, label=kind)
    ax.axhline(float(np.median(s)), color="k", ls="--",
               label=f"median {np.median(s):.2f} s (all)")
    ax.set(xlabel="round trip (server → site → server), in order", ylabel="seconds")
    ax.legend(fontsize=8, ncol=5, loc="upper left")
    fig.tight_layout()
    return fig


def memory_rows(rec: Mapping) -> list[dict]:
    """Peak memory by process kind (PSS, MiB), and the total."""
    m = rec["memory"]
    order = ["SuperLink", "SuperExec", "ServerApp", "flwr run", "SuperNode", "ClientApp"]
    roles = sorted(m["by_role"], key=lambda k: (order.index(k) if k in order else 99, k))
    rows = [{"process": k, "peak_mib": m["by_role"][k]} for k in roles]
    return rows + [{"process": "all at once (peak of the sum)", "peak_mib": m["peak_pss_mib"]}]


def crossings(rec: Mapping) -> list[dict]:
    """What crossed, one row per kind of content: message, direction, what it carries
    (a tensor at the cut is an activation in its forward direction, site to server for the
    front's output and server to site for the server's, and a gradient the other way),
    messages and MiB."""
    parts = _parts(RunConfig.from_dict(rec["config"]))
    up, down = parts["front"][-1], parts["server"][-1]  # the tensors the cut's ends write
    rows = []
    for c in rec["messages"]["contents"]:
        sent_up = c["direction"] == "in"
        what = []
        for name, shape in c["tensors"].items():
            size = "×".join(map(str, shape))
            if name in (up, down):
                forward = (name == up) == sent_up
                what.append(f"{'activations' if forward else 'gradient'} `{name}` {size}")
            else:
                what.append(f"`{name}` {size}".strip() if shape else name)
        if c["weights"]:
            what.append(f"model weights ({c['weights']} arrays)")
        rows.append({"message": c["message"], "direction": "site → server" if sent_up
                     else "server → site", "carries": "; ".join(what) or "(plain values)",
                     "messages": c["messages"], "mib": c["bytes"] / MIB})
    return rows


def to_markdown(rows: Sequence[Mapping], columns: Mapping[str, str], digits: int = 3) -> str:
    """A Markdown table of ``rows`` (the keys of ``columns``, headed by its values)."""
    def cell(v):
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(columns.values()) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(cell(r[k]) for k in columns) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m medseg_kit.deployment``: record the demo (``make flower-demo``'s config)
    and save it where notebook 09 reads it."""
    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("--save", default=str(RECORDING))
    p.add_argument("--out", default=None, help="the run's folder (default: temporary)")
    p.add_argument("--rounds", type=int, default=None)
    args = p.parse_args(argv)
    from .flower import FLOWER_DEMO

    config = FLOWER_DEMO if args.rounds is None else replace(FLOWER_DEMO, rounds=args.rounds)
    rec = record(args.out, config, verbose=True)
    print(results_table(rec))
    print(json.dumps({k: rec[k] for k in ("simulation_wall", "flower_wall", "memory")}))
    print("saved", save(rec, args.save))
    return 0


if __name__ == "__main__":
    sys.exit(main())
