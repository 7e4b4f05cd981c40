"""The SplitFed protocol on Flower's deployment runtime against the in-process simulation:
SuperLinks and SuperNodes on free loopback ports, two sites with their own folders.

A Flower round trip costs seconds here (see ``medseg_kit/flower/MEASUREMENTS.md``), and
most of them are spent waiting, so the runs overlap:

* federation A (a SuperLink and 2 SuperNodes) runs one round of ``sflv1``, then one of
  ``fl`` (two ``flwr run``s on one SuperLink);
* at the same time federation B runs ``sflv2`` for 3 rounds: round 0 with both sites; in round 1 the
  SuperNode of site 1 is stopped as soon as it is asked to train; round 2 cannot start
  with one site left (``min_sites=2``).

Each must equal the simulation of the same config (for ``sflv2``: with site 1 dropped in
round 1): the model, the bytes and the metrics; no message may carry an image or a mask.

Every process is stopped by ``LocalFederation`` (a context manager), also when a test
fails.
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

pytest.importorskip("flwr")

from medseg_kit.deployment import carries_raw, raw_planes  # noqa: E402
from medseg_kit.federated import RunConfig, train  # noqa: E402
from medseg_kit.federated.checkpoint import load_checkpoint  # noqa: E402
from medseg_kit.flower import LocalFederation, prepare_sites  # noqa: E402
from medseg_kit.flower.local import node_configs, run_on  # noqa: E402

pytestmark = pytest.mark.slow

#: two sites of 4-5 training images at 32 px, the teaching UNet narrowed: one batch a turn
CONFIG = RunConfig(model="unet", dataset="kvasir", n_images=12, size=32, width=4, sites=2,
                   rounds=3, batch_size=4, bn_calibration=4, device="cpu", seed=3)
#: run one round of each through federation A
ONE_ROUND = ("sflv1", "fl")
#: the SuperNode of this site is stopped at its first training message of round 1
LOST = 1


def _stop_in_round_1(messages):
    """Stop site ``LOST``'s SuperNode at its first training message of round 1 (its 4th:
    round 0 takes start, back and next)."""
    def during(fed):
        end = time.monotonic() + 600
        while time.monotonic() < end:
            if len(list(messages.glob(f"*-train-site{LOST}-out.npz"))) >= 4:
                fed.stop_site(LOST)
                return
            time.sleep(0.02)
    return during


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every Flower run (by strategy) and the simulation of the same config."""
    work = tmp_path_factory.mktemp("flower")
    nodes = node_configs(prepare_sites(CONFIG, work / "sites"))
    flower, errors = {}, []

    def run(fed, runs):
        for strategy, config, kw in runs:
            try:
                flower[strategy] = run_on(fed, config, work / strategy,
                                          message_log=work / "messages" / strategy,
                                          reply_timeout=120, timeout=600, **kw)
            except BaseException as e:  # reported by the tests, with the others' results
                errors.append(f"{strategy}: {e!r}")

    with contextlib.ExitStack() as stack:  # closed here, on every exit
        fed_a = stack.enter_context(LocalFederation(work / "fed-a", nodes, verbose=False))
        fed_b = stack.enter_context(LocalFederation(work / "fed-b", nodes, verbose=False))
        # one after the other on A (together, their ClientApps would slow B's as much)
        threads = [threading.Thread(target=run, args=(fed_a, [
            (s, replace(CONFIG, strategy=s, rounds=1), {}) for s in ONE_ROUND])),
            threading.Thread(target=run, args=(fed_b, [("sflv2", CONFIG, {
                "min_sites": 2, "during": _stop_in_round_1(work / "messages" / "sflv2")})]))]
        for t in threads:
            t.start()
        # the simulations meanwhile (this process is idle while Flower runs)
        sim = {s: train(replace(CONFIG, strategy=s, rounds=1), work / f"sim-{s}",
                        progress=False) for s in ONE_ROUND}
        sim["sflv2"] = train(replace(CONFIG, rounds=2, dropout_schedule={1: [LOST]}),
                             work / "sim-sflv2", progress=False)
        for t in threads:
            t.join()
    return work, flower, sim, errors


def _same_model(checkpoint, strategy):
    """The model the ServerApp saved equals the simulation's (allclose 1e-6)."""
    saved, ref = load_checkpoint(checkpoint)["strategy"]["modules"]["net"], \
        strategy.model_for(0).state_dict()
    assert saved.keys() == ref.keys()
    for k in ref:
        assert torch.allclose(saved[k].double(), ref[k].double(), atol=1e-6), k


def _same_records(got, want, metrics=lambda rec: True):
    """Same rows: statuses, counts and bytes equal, losses and (where ``metrics(row)``)
    Dice and IoU to 1e-6."""
    assert len(got) == len(want)
    for a, b in zip(got, want):
        keys = ("round", "site", "status", "bytes_up", "bytes_down", "n_train", "n_test")
        assert [a.get(k) for k in keys] == [b.get(k) for k in keys]
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-6, nan_ok=True)
        if metrics(a):
            for k in ("dice", "iou"):
                assert a[k] == pytest.approx(b[k], abs=1e-6), (a["round"], a["site"], k)
    assert got[0]["bytes_up"] > 0 and got[0]["bytes_down"] > 0


@pytest.mark.parametrize("strategy", ONE_ROUND)
def test_one_round_through_flower_is_the_simulation(runs, strategy):
    _, flower, sim, errors = runs
    assert not errors, errors
    run = flower[strategy]
    assert run["history"] is not None, run["log"][-3000:]
    history, (want, trained) = run["history"], sim[strategy]
    _same_model(run["checkpoint"], trained)
    _same_records(history.records, want.records)
    assert len(history.records) == CONFIG.sites + 1
    assert history.events == want.events == []


def test_sflv2_through_flower_is_the_simulation(runs):
    _, flower, sim, errors = runs
    assert not errors, errors
    run = flower["sflv2"]
    history = run["history"]
    assert history is not None, run["log"][-3000:]
    assert int(load_checkpoint(run["checkpoint"])["round"]) == 1
    _same_model(run["checkpoint"], sim["sflv2"][1])
    # round 1: the lost site could not be evaluated in Flower, so its row and the pooled
    # row have other metrics
    _same_records(history.records, sim["sflv2"][0].records,
                  metrics=lambda rec: rec["round"] == 0 or rec["site"] == 0)
    assert len(history.records) == 2 * (CONFIG.sites + 1)


def test_a_lost_site_is_dropped_and_too_few_sites_stop_the_run(runs):
    history = runs[1]["sflv2"]["history"]
    status = {(r["round"], r["site"]): r.get("status") for r in history.records
              if r["site"] != "all"}
    assert status == {(0, 0): "ok", (0, 1): "ok", (1, 0): "ok", (1, LOST): "dropped"}
    assert any(f"round 1: site(s) [{LOST}] dropped out" in e for e in history.events)
    stop = [e for e in history.events if "min_sites=2" in e]
    assert stop and "round 2" in stop[0] and "intact" in stop[0], history.events
    # the last good checkpoint (round 1) is intact and loadable
    assert int(load_checkpoint(runs[1]["sflv2"]["checkpoint"])["round"]) == 1


def test_no_message_carries_an_image_or_a_mask(runs):
    work = runs[0]
    raw = raw_planes(work / "sites")
    assert carries_raw(raw[:2], raw)  # the check itself finds raw data where it is
    for strategy in ("sflv2", *ONE_ROUND):
        files = sorted((work / "messages" / strategy).glob("*.npz"))
        kinds = {f.name.split("-")[1] for f in files}
        assert {"hello", "train", "calibrate", "evaluate"} <= kinds, (strategy, kinds)
        full_size = 0
        for f in files:
            with np.load(f) as z:
                for name in z.files:
                    assert not carries_raw(z[name], raw), f"{f.name}: {name} is raw data"
                    full_size += z[name].shape[-2:] == raw.shape[-2:]
        if strategy != "fl":  # full-resolution activations were checked, not only weights
            assert full_size > 0, strategy
