"""Every strategy on tiny data: it learns, it sends what its scheme sends, labels stay home
in the U-shape, one-site runs equal centralized, and faults are handled."""

import pytest
import torch

from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.federated.config import STRATEGIES
from medseg_kit.federated.run import Run
from medseg_kit.federated.strategies import STRATEGY_CLASSES
from medseg_kit.federated.strategies import fl as fl_module
from medseg_kit.split import Split

from .synthetic import discs as disc_data

DATA = disc_data(n=30)
#: every strategy but the pooled baseline, and those that cut the network (the registry's)
TRAINED_AT_SITES = [n for n in STRATEGIES if n != "centralized"]
SPLITTING = [n for n, cls in STRATEGY_CLASSES.items() if cls.uses_split]


def cfg(**kw):
    base = dict(model="unet", width=4, size=32, sites=2, rounds=3, batch_size=4, lr=3e-3,
                seed=0, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def state_bytes(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def weights(strategy):
    return strategy.model_for(0).state_dict()


def assert_same_weights(a, b, atol=1e-5):
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=atol, rtol=1e-4), k


def test_the_registry_is_the_one_list():
    assert STRATEGIES == tuple(STRATEGY_CLASSES)
    assert set(SPLITTING) == {"sl", "sflv1", "sflv2"}


@pytest.mark.parametrize("strategy", TRAINED_AT_SITES)
def test_strategy_learns_and_keeps_labels_home(strategy):
    h, s = train(cfg(strategy=strategy), data=DATA, progress=False)
    rows = h.rows(GLOBAL)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert s.run.wire.bytes(kind="label") == 0


def test_bytes_per_scheme():
    per_strategy = {}
    for name in STRATEGIES:  # no calibration pass: only training's messages
        h, s = train(cfg(strategy=name, rounds=1, bn_calibration=0), data=DATA,
                     progress=False)
        per_strategy[name] = (h, s)
    for name in ["centralized", "local"]:
        assert per_strategy[name][1].run.wire.bytes() == 0
    h, s = per_strategy["fl"]
    model = state_bytes(s.net)
    for r in h.records:
        if r["site"] != GLOBAL:
            assert r["bytes_up"] == model and r["bytes_down"] == model
    split = Split(s.run.net, *s.run.net.default_cut)
    per_image = split.bytes_per_image(32)
    client = state_bytes(split.client_part())
    for name in SPLITTING:
        h, s = per_strategy[name]
        for r in h.records:
            if r["site"] == GLOBAL:
                continue
            n = r["n_train"] - (r["n_train"] % 4 == 1)
            extra = client  # the client part comes down and goes back up every round
            assert r["bytes_up"] == n * per_image["up"] + extra, name
            assert r["bytes_down"] == n * per_image["down"] + extra, name


@pytest.mark.parametrize("strategy", TRAINED_AT_SITES)
def test_one_site_equals_centralized(strategy):
    data = disc_data(n=20)
    _, c = train(cfg(strategy="centralized", sites=1, rounds=2), data=data, progress=False)
    _, s = train(cfg(strategy=strategy, sites=1, rounds=2), data=data, progress=False)
    assert_same_weights(weights(c), weights(s))


def test_vanilla_split_sends_labels_and_says_so():
    with pytest.warns(UserWarning, match="label"):
        h, s = train(cfg(strategy="sflv2", split="vanilla", rounds=1), data=DATA,
                     progress=False)
    assert s.run.split.back == len(s.run.net)
    assert s.run.wire.bytes(kind="label") > 0
    assert any("label" in e for e in h.events)


def test_dropped_site_is_left_out_of_the_average():
    # bn_calibration=0: the averaged model itself (calibration would reset its BN statistics)
    h, s = train(cfg(strategy="fl", rounds=1, dropout_schedule={0: [1]}, bn_calibration=0),
                 data=DATA, progress=False)
    status = {r["site"]: r["status"] for r in h.records if r["site"] != GLOBAL}
    assert status == {0: "ok", 1: "dropped"}
    assert_same_weights(s.net.state_dict(), s.nets[0].state_dict(), atol=0)
    assert any("dropped" in e for e in h.events)


def test_all_sites_dropped_keeps_the_global_model():
    init = Run(cfg(strategy="sflv2"), data=DATA, progress=False).net.state_dict()
    h, s = train(cfg(strategy="sflv2", rounds=1, dropout_schedule={0: [0, 1]}), data=DATA,
                 progress=False)
    assert_same_weights(init, s.run.net.state_dict(), atol=0)
    assert any("every site dropped" in e for e in h.events)


def test_dropout_probability_is_deterministic():
    run = Run(cfg(site_dropout=0.5, sites=3, rounds=20), data=disc_data(n=40), progress=False)
    seen = [run.active_sites(r) for r in range(20)]
    assert seen == [run.active_sites(r) for r in range(20)]
    assert any(len(a) < 3 for a in seen) and any(len(a) == 3 for a in seen)


def test_nan_update_is_rejected(monkeypatch):
    real = fl_module.train_whole
    calls = []

    def poisoned(net, opt, batches, loss_fn, clip=None):
        stats = real(net, opt, batches, loss_fn, clip)
        calls.append(1)
        if len(calls) == 2:  # the second site of the round sends garbage
            with torch.no_grad():
                next(net.parameters()).fill_(float("nan"))
        return stats

    monkeypatch.setattr(fl_module, "train_whole", poisoned)
    h, s = train(cfg(strategy="fl", rounds=1, bn_calibration=0), data=DATA, progress=False)
    status = {r["site"]: r["status"] for r in h.records if r["site"] != GLOBAL}
    assert status == {0: "ok", 1: "rejected"}
    assert all(torch.isfinite(v).all() for v in s.net.state_dict().values()
               if v.is_floating_point())
    assert_same_weights(s.net.state_dict(), s.nets[0].state_dict(), atol=0)
    assert any("rejected" in e for e in h.events)


def test_packet_loss_run_still_trains_and_counts_the_same_bytes():
    h0, _ = train(cfg(strategy="sflv2", rounds=1), data=DATA, progress=False)
    h1, _ = train(cfg(strategy="sflv2", rounds=1, loss_up=0.2, loss_down=0.2), data=DATA,
                  progress=False)
    assert h0.rows()[-1]["bytes_up"] == h1.rows()[-1]["bytes_up"]
    assert h0.rows()[-1]["train_loss"] != h1.rows()[-1]["train_loss"]


def test_optimizers_and_cosine_schedule():
    run = Run(cfg(optimizer="sgd", schedule="cosine", rounds=4), data=DATA, progress=False)
    assert isinstance(run.make_optimizer(run.net.parameters()), torch.optim.SGD)
    assert [round(run.lr_at(r) / 3e-3, 4) for r in range(4)] == [1.0, 0.8536, 0.5, 0.1464]
    run = Run(cfg(optimizer="adamw"), data=DATA, progress=False)
    assert isinstance(run.make_optimizer(run.net.parameters()), torch.optim.AdamW)
    with pytest.raises(ValueError, match="optimizer"):
        cfg(optimizer="lion")


def test_gradient_clipping_changes_the_step():
    _, a = train(cfg(strategy="sflv2", rounds=1), data=DATA, progress=False)
    _, b = train(cfg(strategy="sflv2", rounds=1, clip_grad=1e-3), data=DATA, progress=False)
    wa, wb = weights(a), weights(b)
    assert any(not torch.allclose(wa[k].float(), wb[k].float()) for k in wa)


@pytest.mark.parametrize("strategy", [n for n in STRATEGIES if n not in SPLITTING])
def test_a_run_that_does_not_split_builds_no_split_and_ignores_the_cut(strategy):
    run = Run(cfg(strategy=strategy, cut=(7, 99), split="vanilla"), data=DATA, progress=False)
    assert run.split is None


def test_a_split_run_resolves_the_cut_once():
    run = Run(cfg(strategy="sl", cut=(2, 5), split="vanilla"), data=DATA, progress=False)
    assert (run.split.front, run.split.back) == (2, len(run.net))
    with pytest.raises(ValueError, match="invalid cut"):
        Run(cfg(strategy="sl", cut=(7, 99)), data=DATA, progress=False)
