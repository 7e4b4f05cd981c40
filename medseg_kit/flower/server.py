"""The server's side of the deployment: the round loop over Flower's Message API.

The ServerApp (:mod:`medseg_kit.flower.server_app`) hands a :class:`flwr.serverapp.Grid`
to :func:`serve`, which runs the same rounds as the simulation
(:func:`medseg_kit.federated.train`) with the sites in other processes:

* ``sflv2``: the sites take turns (the simulation's order) with the one server part;
  per batch two round trips: the server sends its activations (the site answers with
  their gradients), then the gradients of the front's activations together with the
  request for the next batch (the site answers with that batch's activations);
* ``sflv1``: the same protocol with one server copy per site; the sites train at the
  same time (their messages are in flight together) and the copies are averaged;
* ``fl``: each site trains the whole model on its own images (FedAvg) — for comparison;
  here the model itself crosses, twice per round.

The server part (and its optimizer) never leaves the server during training; the client
parts are FedAvg-ed after each round. Then the model to evaluate is sent to the sites,
which calibrate its BatchNorm statistics and count overlaps on their own test images.
The history (metrics, bytes, seconds), the checkpoint and ``config.json`` are written with
the simulation's own functions, in the same files.

Faults: a site whose SuperNode stops answering during its turn is *dropped* for that round
(the server part is put back as it was before that turn; the round completes with the
others). With fewer than ``min_sites`` sites left the run stops with a message; the last
checkpoint stays as it was and ``resume`` continues from it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import Message, RecordDict
from flwr.serverapp import Grid

from .._atomic import atomic_write
from ..federated.config import RunConfig
from ..federated.run import (
    CHECKPOINT,
    HISTORY,
    History,
    Run,
    add_bytes,
    count_calibration,
    fault_events,
    open_run_folder,
    restore,
    round_records,
    save_round,
    set_lr,
)
from ..federated.strategies import STRATEGY_CLASSES, RoundContext
from ..federated.strategies.base import average_into, average_states_into, guarded
from ..federated.tensors import load_into
from ..losses import make_loss
from ..models import create_model
from ..protocol import ServerHalf, send_activations, step_side
from ..split import Split, resolve_cut
from ..wire import Wire
from .records import MessageLog, meta_of, pack, tensors_of
from .site import check_supported, combine_bn_statistics

#: the strategies the deployment runs
STRATEGIES = ("sflv2", "sflv1", "fl")


class SiteLost(RuntimeError):
    """A site's SuperNode did not answer (stopped, unreachable, or its ClientApp failed)."""


class TooFewSites(RuntimeError):
    """Fewer sites than the run needs are left."""


@dataclass
class RemoteSite:
    """A site as the server knows it: id, SuperNode, counts."""

    id: int
    node: int
    n_train: int
    n_test: int

    @property
    def test_idx(self) -> _Tests:
        return _Tests(self.id, self.n_test)

    @property
    def train_idx(self) -> np.ndarray:  # only counted: the images stay at the site
        return np.arange(self.n_train)


def _no_batches(*_):
    raise RuntimeError("the server has no images: a site makes its own batches")


@dataclass(frozen=True)
class _Tests:
    """Stands for a site's test images in
    :func:`~medseg_kit.federated.run.round_records` (which only counts them and hands them
    back to :meth:`ServerRun.evaluate`)."""

    site: int
    n: int

    def __len__(self) -> int:
        return self.n


class _TestSet:
    def __init__(self, class_names):
        self.class_names = tuple(class_names)


class ServerRun:
    """What the server holds of a run: config, model, cut, wire, sites; the methods are
    :class:`~medseg_kit.federated.run.Run`'s own (learning rate, optimizers, dropout
    schedule). Evaluation returns the counts the sites sent."""

    lr_at = Run.lr_at
    make_optimizer = Run.make_optimizer
    active_sites = Run.active_sites

    def __init__(self, config: RunConfig, sites: list[RemoteSite], info: dict):
        c = self.config = config
        self.sites = sites
        self.device = torch.device("cpu")
        torch.manual_seed(c.seed)  # as the simulation: the same initial weights
        self.net = create_model(c.model, in_channels=info["in_channels"],
                                num_classes=info["model_classes"], width=c.width)
        if c.channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.test = _TestSet(info["class_names"])
        self.num_classes = info["num_classes"]
        self.wire = Wire(codec=c.codec, noise_std=c.noise_std, noise=c.noise,
                         loss_up=c.loss_up, loss_down=c.loss_down, seed=c.seed)
        self.split = None
        if c.strategy in ("sflv1", "sflv2"):
            front, back = resolve_cut(self.net, c.cut, c.split)
            self.split = Split(self.net, front, back, allow_raw=c.allow_raw)
        self.loss_fn = make_loss(c.loss, c.dice_weight)
        self.counts: dict[int, np.ndarray] = {}

    def evaluate(self, net, tests: _Tests) -> np.ndarray:
        """The overlap counts site ``tests.site`` sent for this round (none for a site
        that could not be reached)."""
        return self.counts.get(tests.site, np.zeros((0, max(self.num_classes, 2), 3),
                                                    dtype=np.int64))


# ---------------------------------------------------------------- messaging
class Messenger:
    """Sends messages to sites and waits for their replies (Flower's Message API).

    Replies are polled every ``poll`` seconds at first, then less often (x1.5 a poll, up
    to ``poll_max``: a reply takes seconds, and every poll costs the SuperLink work); Grid's
    own ``send_and_receive`` sleeps 3 s between polls. A reply that is an error (the
    SuperNode stopped: Flower answers for it) or none within ``timeout`` seconds raises
    :class:`SiteLost`.
    """

    def __init__(self, grid: Grid, log: MessageLog, timeout: float = 300.0,
                 poll: float = 0.02, poll_max: float = 0.1):
        self.grid, self.log, self.timeout = grid, log, timeout
        self.poll, self.poll_max = poll, poll_max
        self.exchanges: list[float] = []  # seconds per round trip

    def push(self, site: RemoteSite, kind: str, content: RecordDict) -> str:
        msg = Message(content, dst_node_id=site.node, message_type=f"query.{kind}")
        self.log.write(msg, kind, site.id, "out")
        [mid] = self.grid.push_messages([msg])
        return mid

    def wait(self, pending: dict[str, tuple[RemoteSite, str, float]]
             ) -> dict[str, RecordDict | SiteLost]:
        """Replies (or :class:`SiteLost`) to the messages ``pending`` (id -> site, kind,
        time sent), as they come."""
        out: dict[str, RecordDict | SiteLost] = {}
        delay = self.poll
        while len(out) < len(pending):
            ids = [m for m in pending if m not in out]
            for reply in self.grid.pull_messages(ids):
                mid = reply.metadata.reply_to_message_id
                site, kind, t0 = pending[mid]
                self.exchanges.append(time.perf_counter() - t0)
                if reply.has_error():
                    out[mid] = SiteLost(f"site {site.id} ({kind}): {reply.error.reason} "
                                        f"(code {reply.error.code})")
                else:
                    self.log.write(reply, kind, site.id, "in")
                    out[mid] = reply.content
            now = time.perf_counter()
            for m in ids:
                if m not in out and now - pending[m][2] > self.timeout:
                    out[m] = SiteLost(f"site {pending[m][0].id} ({pending[m][1]}): no "
                                      f"reply in {self.timeout:.0f} s")
            if len(out) < len(pending):
                time.sleep(delay)
                delay = min(delay * 1.5, self.poll_max)
        return out

    def ask(self, site: RemoteSite, kind: str, content: RecordDict) -> RecordDict:
        t0 = time.perf_counter()
        mid = self.push(site, kind, content)
        reply = self.wait({mid: (site, kind, t0)})[mid]
        if isinstance(reply, SiteLost):
            raise reply
        return reply

    def ask_all(self, asks: dict[int, tuple[RemoteSite, str, RecordDict]]
                ) -> dict[int, RecordDict | SiteLost]:
        """One message to each of several sites at once; their replies by key."""
        pending, keys = {}, {}
        for key, (site, kind, content) in asks.items():
            t0 = time.perf_counter()
            mid = self.push(site, kind, content)
            pending[mid], keys[mid] = (site, kind, t0), key
        return {keys[m]: r for m, r in self.wait(pending).items()}

    def drive(self, turns: dict[int, tuple[RemoteSite, Generator]]) -> dict[int, dict]:
        """Run site turns (generators that yield ``(kind, content)`` and receive the
        reply's content) to their end, their messages in flight together; a turn whose
        site is lost gets :class:`SiteLost` thrown in. Returns each turn's result."""
        results, asks = {}, {}

        def advance(key, gen, value):
            try:
                if isinstance(value, SiteLost):
                    asks[key] = gen.throw(value)
                else:
                    asks[key] = gen.send(value)
            except StopIteration as stop:
                results[key] = stop.value
                asks.pop(key, None)

        for key, (_, gen) in turns.items():
            advance(key, gen, None)
        while asks:
            replies = self.ask_all({k: (turns[k][0], *asks[k]) for k in asks})
            for key, reply in replies.items():
                advance(key, turns[key][1], reply)
        return results


# -------------------------------------------------------------- the rounds
class _TurnWire:
    """One turn's view of the run's wire: sends through it (same codecs, generators and
    totals) and counts the bytes this turn sent down. The turns of ``sflv1`` and ``fl``
    are in flight together, so differences of the wire's totals would mix them."""

    def __init__(self, wire: Wire):
        self.wire, self.bytes_down = wire, 0

    def send(self, tensors: dict, direction: str, kind: str, requires_grad=None) -> dict:
        before = self.wire.bytes_down
        out = self.wire.send(tensors, direction, kind, requires_grad)
        self.bytes_down += self.wire.bytes_down - before
        return out


class Federation:
    """The server's state of a deployed run and its rounds."""

    def __init__(self, grid: Grid, config: RunConfig, out: str | Path, *,
                 min_sites: int = 1, timeout: float = 300.0, wait_nodes: float = 120.0,
                 message_log: str | Path | None = None, say=print):
        if config.strategy not in STRATEGIES:
            raise ValueError(f"the Flower deployment runs {', '.join(STRATEGIES)}; got "
                             f"strategy {config.strategy!r}")
        check_supported(config)
        self.config, self.out, self.say = config, Path(out), say
        self.min_sites = max(1, int(min_sites))
        self.messenger = Messenger(grid, MessageLog(message_log), timeout)
        self.grid, self.wait_nodes = grid, wait_nodes

    # ------------------------------------------------------------ discovery
    def discover(self) -> None:
        """Wait for the run's number of SuperNodes, tell each the run's config and learn
        its site id and counts."""
        c = self.config
        end = time.monotonic() + self.wait_nodes
        while len(nodes := list(self.grid.get_node_ids())) < c.sites:
            if time.monotonic() > end:
                raise TooFewSites(f"{len(nodes)} SuperNode(s) connected within "
                                  f"{self.wait_nodes:.0f} s; the run has sites={c.sites}")
            time.sleep(0.2)
        hello = json.dumps(c.to_dict())
        probe = [RemoteSite(-1 - k, node, 0, 0) for k, node in enumerate(sorted(nodes))]
        replies = self.messenger.ask_all({k: (s, "hello", pack(config=hello))
                                          for k, s in enumerate(probe)})
        sites, info = {}, None
        for k, reply in replies.items():
            if isinstance(reply, SiteLost):
                raise TooFewSites(f"a SuperNode did not answer the run's first message: "
                                  f"{reply}")
            m = meta_of(reply)
            sid = int(m["site"])
            if sid in sites or not 0 <= sid < c.sites:
                raise ValueError(f"SuperNodes report site ids "
                                 f"{sorted([*sites, sid])}; each of 0..{c.sites - 1} must "
                                 "be given once (node config site=<id>)")
            sites[sid] = RemoteSite(sid, probe[k].node, int(m["n_train"]), int(m["n_test"]))
            m["class_names"] = json.loads(m["class_names"])
            if info is not None and (info["class_names"], info["in_channels"]) != (
                    m["class_names"], m["in_channels"]):
                raise ValueError(f"site {sid} holds other data ({m['dataset']}, classes "
                                 f"{m['class_names']}) than the others")
            info = m
        self.run = ServerRun(c, [sites[i] for i in range(c.sites)], info)
        self.alive = set(sites)
        for s in self.run.sites:
            self.say(f"site {s.id}: SuperNode {s.node}, {s.n_train} training and {s.n_test} "
                     "test images")

    # ------------------------------------------------------------- strategy
    def build(self) -> None:
        """The simulation's own strategy object, built from a
        :class:`~medseg_kit.federated.strategies.RoundContext` of what the server holds:
        its server part(s), optimizers, site order and checkpoint layout are used as
        they are; its copies of the client parts hold what the sites last uploaded (the
        sites' optimizers live at the sites)."""
        run, c = self.run, self.config
        ctx = RoundContext(net=run.net, sites=tuple(run.sites), wire=run.wire,
                           loss_fn=run.loss_fn, batches=_no_batches,
                           make_optimizer=run.make_optimizer, local_epochs=c.local_epochs,
                           clip_grad=c.clip_grad, seed=c.seed, split=run.split)
        st = self.strategy = STRATEGY_CLASSES[c.strategy](ctx)
        if c.strategy == "fl":
            self.global_client, self.copies = st.net, st.nets
        else:
            self.global_client, self.copies = st.global_client, st.clients
        if c.strategy == "sflv1":
            self.server = st.global_server
        elif c.strategy == "sflv2":
            self.server = st.server

    def model_for(self, site: int):
        return self.strategy.model_for(site)

    # ------------------------------------------------------------ one turn
    def turn(self, site: RemoteSite, r: int, server=None, opt=None) -> Generator:
        """One site's training turn (a generator: see :meth:`Messenger.drive`); returns
        the stats the simulation's strategies return, plus ``received`` (the weights
        the server got)."""
        run, c = self.run, self.config
        wire, t0 = _TurnWire(run.wire), time.perf_counter()
        sent_up, total, n = 0, 0.0, 0
        weights = wire.send(self.global_client.state_dict(keep_vars=True), "down", "model")
        if server is None:  # fl: the whole model, trained at the site
            reply = yield "train", pack(weights, step="whole", round=r, lr=run.lr_at(r))
            m = meta_of(reply)
            sent_up += int(m["bytes_up"])
            total, n = float(m["loss"]) * int(m["n"]), int(m["n"])
            received = tensors_of(reply) if int(m.get("finite", 1)) else None
        else:
            half = ServerHalf(run.split, server, run.loss_fn)
            reply = yield "train", pack(weights, step="start", round=r, lr=run.lr_at(r))
            while True:
                m = meta_of(reply)
                sent_up += int(m["bytes_up"])
                if int(m.get("done", 0)):
                    received = tensors_of(reply) if int(m["finite"]) else None
                    break
                b, batch_n = int(m["batch"]), int(m["n"])
                opt.zero_grad(set_to_none=True)
                down = half.forward(tensors_of(reply))
                if run.split.labels_to_server:
                    loss = float(half.loss)
                    g_down = {}
                else:  # step 2 out, step 3 back
                    reply = yield "train", pack(send_activations(wire, run.split, down,
                                                                 "down"),
                                                step="back", round=r, batch=b)
                    m = meta_of(reply)
                    sent_up += int(m["bytes_up"])
                    loss, g_down = float(m["loss"]), tensors_of(reply)
                g_up = wire.send(half.backward(g_down), "down", "gradient")
                step_side(opt, list(server.parameters()), c.clip_grad)
                total, n = total + loss * batch_n, n + batch_n
                reply = yield "train", pack(g_up, step="next", round=r, batch=b)
        loss = total / n if n else float("nan")
        if received is None:
            loss = float("nan")  # the site's weights were not finite: rejected
        return {"train_loss": loss, "n": n, "bytes_up": sent_up,
                "bytes_down": wire.bytes_down, "seconds": time.perf_counter() - t0,
                "received": received}

    def _guarded_turn(self, site: RemoteSite, r: int, server, opt) -> dict:
        """A turn that runs alone, with the server part put back if it fails (the
        simulation's guard; a lost site counts as a failure here and is marked)."""
        lost = []

        def run_turn():
            res = self.messenger.drive({site.id: (site, self.turn(site, r, server, opt))})
            if site.id not in res:  # pragma: no cover - drive always finishes a turn
                raise SiteLost(f"site {site.id}: turn did not finish")
            return res[site.id]

        def fn():
            try:
                return run_turn()
            except SiteLost as e:
                lost.append(e)
                return {"train_loss": float("nan"), "n": 0, "bytes_up": 0,
                        "bytes_down": 0, "seconds": 0.0, "received": None}

        stats = guarded([server], [opt], fn)
        if lost:
            stats["status"] = "lost"
            stats["why"] = str(lost[0])
        return stats

    def train_round(self, r: int, active: list[int]) -> dict[int, dict]:
        run, c = self.run, self.config
        sites = {s.id: s for s in run.sites}
        out = {}
        st = self.strategy
        if c.strategy == "sflv2":
            for i in st.site_order(r, active):
                out[i] = self._guarded_turn(sites[i], r, st.server, st.opt_server)
        else:
            turns = {}
            for i in active:
                server = opt = None
                if c.strategy == "sflv1":  # the server's copy for site i, no wire
                    server, opt = st.servers[i], st.opt_servers[i]
                    load_into(server, self.server.state_dict(keep_vars=True))
                turns[i] = (sites[i], self._lost_to_stats(self.turn(sites[i], r, server,
                                                                    opt)))
            out = self.messenger.drive(turns)
        received = {i: stats.pop("received") for i, stats in out.items()}
        for i, stats in out.items():
            if stats.get("status") != "lost":
                ok = math.isfinite(stats["train_loss"]) and received[i] is not None
                stats["status"] = "ok" if ok else "rejected"
        ok = [i for i in active if out[i]["status"] == "ok"]
        for i in ok:
            load_into(self.copies[i], received[i])
        if ok:
            w = [sites[i].n_train for i in ok]
            average_states_into([self.global_client], [received[i] for i in ok], w)
            if c.strategy == "sflv1":
                average_into([self.server], [st.servers[i] for i in ok], w)
        return out

    @staticmethod
    def _lost_to_stats(gen: Generator) -> Generator:
        """A turn whose site is lost ends with a ``lost`` status instead of an error."""
        try:
            return (yield from gen)
        except SiteLost as e:
            return {"train_loss": float("nan"), "n": 0, "bytes_up": 0, "bytes_down": 0,
                    "seconds": 0.0, "received": None, "status": "lost", "why": str(e)}

    # ----------------------------------------------------------- evaluation
    def calibrate(self, r: int, sites: list[int]) -> dict[int, dict]:
        """BatchNorm calibration from the sites' statistics (as
        :meth:`~medseg_kit.federated.run.Run.calibrate`); the bytes counted are the
        simulation's (the activations of that forward pass across the cut)."""
        c, run = self.config, self.run
        if c.bn_calibration == 0 or not sites:
            return {}
        by_id = {s.id: s for s in run.sites}
        weights = run.net.state_dict()
        replies = self.messenger.ask_all({i: (by_id[i], "calibrate", pack(weights, round=r))
                                          for i in sites})
        got = [tensors_of(replies[i]) for i in sites if not isinstance(replies[i], SiteLost)]
        combine_bn_statistics(run.net, got)
        self._lose([i for i in sites if isinstance(replies[i], SiteLost)], replies, r)
        return count_calibration(run.wire, run.split, c.size,
                                 {i: min(c.bn_calibration, by_id[i].n_train) for i in sites})

    def evaluate(self, r: int) -> None:
        """Every reachable site's overlap counts of the model (``run.counts``)."""
        run = self.run
        weights = run.net.state_dict()
        sites = [s for s in run.sites if s.id in self.alive]
        replies = self.messenger.ask_all({s.id: (s, "evaluate", pack(weights, round=r))
                                          for s in sites})
        run.counts = {i: tensors_of(rep)["counts"].numpy() for i, rep in replies.items()
                      if not isinstance(rep, SiteLost)}
        self._lose([i for i, rep in replies.items() if isinstance(rep, SiteLost)], replies, r)

    def _lose(self, ids: list[int], why: dict, r: int) -> None:
        for i in ids:
            if i in self.alive:
                self.alive.discard(i)
                self.event(f"round {r}: site {i} is unreachable ({why[i]})")

    # ------------------------------------------------------------- the run
    def write_exchanges(self) -> None:
        """The seconds of every round trip of this run, in ``out/exchanges.json`` (one
        file per ``flwr run``: a resumed run adds ``exchanges-2.json`` ...)."""
        if not self.messenger.exchanges or not self.out.is_dir():
            return
        n = 1
        while (self.out / (name := "exchanges.json" if n == 1 else f"exchanges-{n}.json")
               ).exists():
            n += 1
        atomic_write(self.out / name, json.dumps({"seconds": self.messenger.exchanges}))

    def event(self, message: str) -> None:
        self.history.events.append(message)
        self.say(message)

    def serve(self, resume: bool = False) -> History:
        """Run every round; write ``config.json``, ``checkpoint.pt`` and ``history.json``
        after each (as :func:`medseg_kit.federated.train` does); return the history."""
        c, out = self.config, self.out
        ck = open_run_folder(out, c, resume)
        if not resume and (out / CHECKPOINT).exists():
            raise ValueError(f"{out} already holds a run; resume it or choose another out")
        self.discover()
        self.build()
        self.history = History(c.to_dict())
        start = 0
        if ck is not None:
            self.history = restore(ck, self.run, self.strategy, out / CHECKPOINT)
            self.history.config = c.to_dict()
            start = int(ck["round"]) + 1
            self.event(f"resumed after round {start - 1} (the sites' optimizer states "
                       "start afresh: they live in the previous run's Flower context)")
        if self.run.split is not None and start == 0 and self.run.split.labels_to_server:
            self.history.events.append("vanilla split: the server computes the loss, so "
                                       "every label is sent to it")
        for r in range(start, c.rounds):
            t0 = time.perf_counter()
            set_lr(self.strategy, self.run.lr_at(r))
            active = [i for i in self.run.active_sites(r) if i in self.alive]
            if len(self.alive) < self.min_sites:
                message = (f"round {r}: {len(self.alive)} site(s) left "
                           f"({sorted(self.alive)}), fewer than min_sites={self.min_sites}; "
                           "stopped. " + (f"The checkpoint of round {r - 1} in {out} is "
                                          "intact: start the missing SuperNodes and resume."
                                          if r > 0 else "No round was completed."))
                self.event(message)
                if out.is_dir():  # the history says why it ends here
                    atomic_write(out / HISTORY, self.history.to_json())
                raise TooFewSites(message)
            stats = self.train_round(r, active) if active else {}
            lost = [i for i, st in stats.items() if st.get("status") == "lost"]
            for i in lost:
                self._lose([i], {i: stats.pop(i)["why"]}, r)
            done = [i for i in active if i not in lost]
            for message in fault_events(r, [s.id for s in self.run.sites], done, stats):
                self.event(message)
            add_bytes(stats, self.calibrate(r, [i for i in done if i in self.alive]))
            self.evaluate(r)
            seconds = time.perf_counter() - t0
            self.history.records.extend(round_records(self.run, self, r, done, stats,
                                                      seconds))
            g = self.history.rows()[-1]
            self.say(f"round {r + 1}/{c.rounds}: loss {g['train_loss']:.3f}, Dice "
                     f"{g['dice']:.3f}, {seconds:.1f} s")
            save_round(out, c, r, self.strategy, self.history, self.run, first=r == start)
        return self.history


def ping(grid: Grid, n: int, torch_: bool, out: str | Path, say=print) -> list[float]:
    """Time ``n`` empty round trips to the first SuperNode (write ``latency.json``)."""
    messenger = Messenger(grid, MessageLog(None))
    end = time.monotonic() + 120
    while not (nodes := sorted(grid.get_node_ids())):
        if time.monotonic() > end:
            raise TooFewSites("no SuperNode connected within 120 s")
        time.sleep(0.1)
    site = RemoteSite(0, nodes[0], 0, 0)
    for _ in range(n):
        messenger.ask(site, "ping", pack(torch=int(torch_)))
    seconds = messenger.exchanges
    Path(out).mkdir(parents=True, exist_ok=True)
    atomic_write(Path(out) / "latency.json", json.dumps({"seconds": seconds,
                                                         "torch": torch_}))
    say("round trips (s): " + " ".join(f"{t:.2f}" for t in seconds))
    return seconds
