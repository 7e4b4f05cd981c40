"""The wire's counts equal the closed-form formulas of medseg_kit.traffic for every
strategy, codec and cut: nothing a strategy sends goes uncounted, nothing is counted twice."""

import pytest

from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.federated.config import STRATEGIES
from medseg_kit.models import create_model
from medseg_kit.split import Split
from medseg_kit.traffic import (
    batch_sizes,
    break_even_images,
    run_site_round_bytes,
    site_round_bytes,
    state_bytes,
)
from medseg_kit.wire import Wire

from .synthetic import discs as disc_data

DATA = disc_data(n=22)
CODECS = ["none", "fp16", "int8", "activation=int8c,gradient=topk:0.1,model=fp16",
          "up.activation=bf16,down.gradient=int8,model=int8"]


def cfg(**kw):
    base = dict(model="unet", width=4, size=32, sites=2, rounds=2, batch_size=4, seed=0,
                device="cpu", bn_calibration=4)
    return RunConfig(**{**base, **kw})


def cases():
    for strategy in STRATEGIES:
        for codec in CODECS:
            cuts = [None, (2, 7), (3, 10)] if strategy in ("sl", "sflv1", "sflv2") else [None]
            for cut in cuts:
                yield strategy, codec, cut


@pytest.mark.parametrize("strategy,codec,cut", list(cases()))
def test_measured_bytes_equal_the_formula(strategy, codec, cut):
    kw = {"cut": cut, "split": "vanilla"} if cut == (3, 10) else {"cut": cut}
    history, s = train(cfg(strategy=strategy, codec=codec, **kw), data=DATA, progress=False)
    run = s.run
    for rec in history.records:
        if rec["site"] == GLOBAL:
            continue
        want = run_site_round_bytes(run, rec["site"], accepted=rec["status"] == "ok")
        assert (rec["bytes_up"], rec["bytes_down"]) == (want["up"], want["down"]), rec
    # by kind too: the whole run's counts are the sum of the sites' formulas
    per_kind: dict[str, int] = {}
    for rec in history.records:
        if rec["site"] != GLOBAL:
            f = run_site_round_bytes(run, rec["site"], accepted=rec["status"] == "ok")
            for k, v in f.items():
                if "/" in k:
                    per_kind[k] = per_kind.get(k, 0) + v
    for key, v in per_kind.items():
        direction, kind = key.split("/")
        assert run.wire.bytes(direction, kind) == v, key
    assert run.wire.bytes() == sum(per_kind.values())


def test_splitfed_formula_in_the_issue_form():
    """2·n·q + 2·|W_c| per site and round for float32 SplitFed without calibration, where
    every batch is full."""
    net = create_model("unet", width=4)
    split = Split(net, *net.default_cut)
    q = split.bytes_per_image(32)
    client = state_bytes(split.client_part(net), Wire(), "up")
    got = site_round_bytes("sflv2", net, 32, 16, split=split, batch_size=4, bn_calibration=0)
    assert got["up"] + got["down"] == 16 * (q["up"] + q["down"]) + 2 * client
    fl = site_round_bytes("fl", net, 32, 16)
    assert fl["up"] == fl["down"] == state_bytes(net, Wire(), "up")


def test_batch_sizes_follow_the_run_loop():
    assert batch_sizes(9, 4) == [4, 4]  # a last batch of one is dropped
    assert batch_sizes(10, 4, 2) == [4, 4, 2] * 2
    assert batch_sizes(1, 4) == [1]


def test_break_even_is_where_splitfed_stops_being_cheaper():
    net = create_model("unet", width=8)
    n = break_even_images(net, 64, bn_calibration=0)
    assert n is not None and n >= 2
    def total(strategy, k):
        split = Split(net, *net.default_cut)
        b = site_round_bytes(strategy, net, 64, k, split=split, bn_calibration=0)
        return b["up"] + b["down"]
    assert total("sflv2", n) <= total("fl", n) < total("sflv2", n + 1)
