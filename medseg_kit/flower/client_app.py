"""The ClientApp: a site's SuperNode runs this for every message from the server.

Messages (``query.<name>``; see :mod:`medseg_kit.flower.server` for the other side):

* ``hello``: the run's config; the site answers with its counts and classes;
* ``train``, ``step`` = ``start`` (the client part's weights: step 1 of the first batch),
  ``back`` (the server's activations: step 3) or ``next`` (the gradients of the front's
  activations: step 5 and the optimizer step, then step 1 of the next batch — the
  gradient rides on the next request — or, after the last batch, the client part's
  weights);
* ``calibrate`` and ``evaluate``: the model to evaluate; the site answers with BatchNorm
  statistics and per-image overlap counts of its own images.

The site's state between messages (client part, optimizer, where it is in its turn, the
server's activations of the current batch) lives in ``Context.state``, as Flower
intends; the ClientApp process itself is rebuilt for each message.
"""

from __future__ import annotations

from flwr.app import ArrayRecord, ConfigRecord, Context, Message
from flwr.clientapp import ClientApp

from .records import (
    meta_of,
    pack,
    state_from_bytes,
    state_to_bytes,
    tensors_of,
)

app = ClientApp()

#: the steps of a ``train`` message
STEPS = ("start", "back", "next", "whole")


def _worker(context: Context, config_json: str | None = None):
    from ..federated.config import RunConfig
    from .site import SiteWorker

    if config_json is None:
        if "run" not in context.state:
            raise RuntimeError("this site has not been told the run's config (no hello)")
        config_json = context.state["run"]["config"]
    import json

    cfg = context.node_config
    if "site" not in cfg or "data" not in cfg:
        raise ValueError("the SuperNode needs --node-config 'site=<id> data=\"<folder>\"'; "
                         f"got {dict(cfg)}")
    return SiteWorker(int(cfg["site"]), str(cfg["data"]),
                      RunConfig.from_dict(json.loads(config_json)))


def _client_state(context: Context) -> tuple[dict | None, dict | None]:
    from .records import tensors_of as _t

    client = None
    if "client" in context.state:
        client = _t({"tensors": context.state["client"]})
    opt = (state_from_bytes(context.state["optimizer"]["state"])
           if "optimizer" in context.state else None)
    return client, opt


def _save(context: Context, worker, **cursor) -> None:
    from .records import TENSORS

    context.state["client"] = pack(worker.client.state_dict())[TENSORS]
    context.state["optimizer"] = ConfigRecord({"state": state_to_bytes(
        worker.opt.state_dict())})
    if cursor:
        context.state["cursor"] = ConfigRecord(cursor)


@app.query("ping")
def ping(msg: Message, context: Context) -> Message:
    """An empty round trip (latency measurement); ``torch=1`` imports PyTorch first, as
    every training message does."""
    if int(meta_of(msg.content).get("torch", 0)):
        import torch  # noqa: F401
    return Message(pack(ok=1), reply_to=msg)


@app.query("hello")
def hello(msg: Message, context: Context) -> Message:
    meta = meta_of(msg.content)
    from ..federated.config import RunConfig
    from .site import check_supported

    check_supported(RunConfig.from_dict(__import__("json").loads(meta["config"])))
    worker = _worker(context, meta["config"])
    context.state["run"] = ConfigRecord({"config": meta["config"]})
    for key in ("client", "optimizer", "cursor", "down"):  # a new run starts afresh
        if key in context.state:
            del context.state[key]
    return Message(pack(**worker.describe()), reply_to=msg)


@app.query("train")
def train(msg: Message, context: Context) -> Message:
    worker = _worker(context)
    meta, tensors = meta_of(msg.content), tensors_of(msg.content)
    client, opt = _client_state(context)
    worker.load_state(client, opt)
    step, r, b = meta["step"], int(meta["round"]), int(meta.get("batch", 0))
    if step not in STEPS:
        raise ValueError(f"unknown train step {step!r}; the steps are {', '.join(STEPS)}")
    worker.reseed(r, b, STEPS.index(step))
    out: dict = {}
    if step == "start":  # the client part arrives; step 1 of the first batch
        worker.load_state(tensors, None)
        worker.set_lr(float(meta["lr"]))
        up, n = worker.front(r, 0)
        out = {"tensors": up, "n": n, "batch": 0, "batches": len(worker.batches_of(r))}
    elif step == "back":  # step 3 of batch b
        worker.replay(r, b)
        g_down, loss = worker.back(tensors)
        context.state["down"] = pack(tensors)["tensors"] if tensors else ArrayRecord()
        out = {"tensors": g_down, "loss": loss}
    elif step == "next":  # step 5 of batch b, then step 1 of batch b + 1 or the upload
        down = (tensors_of({"tensors": context.state["down"]})
                if "down" in context.state and not worker.split.labels_to_server else None)
        worker.replay(r, b, down)
        worker.finish(tensors)
        batches = worker.batches_of(r)
        if b + 1 < len(batches):
            up, n = worker.front(r, b + 1)
            out = {"tensors": up, "n": n, "batch": b + 1}
        elif worker.finite():
            out = {"tensors": worker.upload(), "done": 1, "finite": 1}
        else:
            out = {"done": 1, "finite": 0}
    else:  # "whole", fl: the whole model arrives, is trained and goes back
        worker.load_state(tensors, None)
        worker.set_lr(float(meta["lr"]))
        stats = worker.train_whole(r)
        finite = worker.finite() and stats["train_loss"] == stats["train_loss"]
        out = {"tensors": worker.upload() if finite else None, "loss": stats["train_loss"],
               "n": stats["n"], "finite": int(finite)}
    _save(context, worker)
    content = pack(out.pop("tensors", None), bytes_up=worker.wire.bytes_up, **out)
    return Message(content, reply_to=msg)


@app.query("calibrate")
def calibrate(msg: Message, context: Context) -> Message:
    worker = _worker(context)
    stats = worker.bn_statistics(tensors_of(msg.content), int(meta_of(msg.content)["round"]))
    return Message(pack(stats), reply_to=msg)


@app.query("evaluate")
def evaluate(msg: Message, context: Context) -> Message:
    import torch

    worker = _worker(context)
    counts = worker.evaluate(tensors_of(msg.content))
    return Message(pack({"counts": torch.from_numpy(counts)}), reply_to=msg)
