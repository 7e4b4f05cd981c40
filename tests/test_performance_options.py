"""Performance options and the O(1) guard.

A default run (fp32, contiguous, eager) computes bit for bit what the code before the
multi-tensor guard, FedAvg and model copies computed: the reference is a frozen copy of
those code paths, patched in. Mixed precision, channels-last and compiled runs train,
and say so in their history.
"""

import argparse
import contextlib
import copy
import functools
import math

import pytest
import torch
from torch import nn

from medseg_kit import runflags
from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.federated import tensors as T
from medseg_kit.federated.compute import PRECISIONS, TrainingLoss
from medseg_kit.federated.run import Run, jsonable
from medseg_kit.federated.strategies import base, centralized, fl, local, sflv1, sflv2, sl
from medseg_kit.protocol import split_train_step
from medseg_kit.split import Split
from medseg_kit.wire import Wire

from .synthetic import discs as disc_data

DATA = disc_data(n=30)


def cfg(**kw):
    base_ = dict(model="unet", width=4, size=32, sites=2, rounds=2, batch_size=4, lr=3e-3,
                 seed=0, device="cpu")
    base_.update(kw)
    return RunConfig(**base_)


# ------------------------------------------------- the code paths before, frozen
def _old_is_finite(*modules):
    flags = [torch.isfinite(t).all() for m in modules for t in m.state_dict().values()
             if t.is_floating_point()]
    return bool(torch.stack(flags).all()) if flags else True


def _old_snapshot(state):
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        out = type(state)((k, _old_snapshot(v)) for k, v in state.items())
        if hasattr(state, "_metadata"):
            out._metadata = state._metadata
        return out
    if isinstance(state, list | tuple):
        return type(state)(_old_snapshot(v) for v in state)
    return state


def _old_guarded(modules, optimizers, fn):
    saved = ([_old_snapshot(m.state_dict()) for m in modules],
             [_old_snapshot(o.state_dict()) for o in optimizers])
    stats = fn()
    if math.isfinite(stats["train_loss"]) and _old_is_finite(*modules):
        stats["status"] = "ok"
        return stats
    for m, s in zip(modules, saved[0]):
        m.load_state_dict(s)
    for o, s in zip(optimizers, saved[1]):
        o.load_state_dict(s)
    stats["status"] = "rejected"
    return stats


def _old_fedavg(states, weights):
    total = float(sum(weights))
    if len(states) == 1:
        return {k: v.detach().clone() for k, v in states[0].items()}
    ws = [w / total for w in weights]
    out = {}
    for k in states[0]:
        acc = sum(w * s[k].detach().to(torch.float64) for w, s in zip(ws, states))
        ref = states[0][k]
        out[k] = acc.round().to(ref.dtype) if not ref.is_floating_point() else acc.to(ref.dtype)
    return out


def _old_average_into(targets, sources, weights):
    avg = _old_fedavg([m.state_dict() for m in sources], weights)
    for t in targets:
        t.load_state_dict(avg)


def _old_average_states_into(targets, states, weights):
    avg = _old_fedavg(list(states), weights)
    for t in targets:
        t.load_state_dict(avg)


def _old_download(wire, source, target):
    target.load_state_dict(wire.send(dict(source.state_dict()), "down", "model"))


def _old_upload(wire, module):
    return wire.send(dict(module.state_dict()), "up", "model")


def _old_train_whole(net, opt, batches, loss_fn, clip=None):
    net.train()
    params = [p for g in opt.param_groups for p in g["params"]]
    total, n = None, 0
    for x, y in batches:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net.run({"x": x})["logits"], y)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        total = loss.detach() * len(x) if total is None else total + loss.detach() * len(x)
        n += len(x)
    return {"train_loss": (total / n).item() if n else float("nan"), "n": n, "bytes_up": 0,
            "bytes_down": 0, "seconds": 0.0}


def _old_train_split(split, client, server, opt_client, opt_server, batches, loss_fn, wire,
                     clip=None, front_penalty=None):
    client.train()
    server.train()
    cparams, sparams = list(client.parameters()), list(server.parameters())
    up0, down0 = wire.bytes_up, wire.bytes_down
    total, n = None, 0
    for x, y in batches:
        opt_client.zero_grad(set_to_none=True)
        opt_server.zero_grad(set_to_none=True)
        loss = split_train_step(split, client, server, x, y, loss_fn, wire, front_penalty)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(sparams, clip)
            torch.nn.utils.clip_grad_norm_(cparams, clip)
        opt_server.step()
        opt_client.step()
        total = loss * len(x) if total is None else total + loss * len(x)
        n += len(x)
    return {"train_loss": (total / n).item() if n else float("nan"), "n": n,
            "bytes_up": wire.bytes_up - up0, "bytes_down": wire.bytes_down - down0,
            "seconds": 0.0}


_OLD = {"guarded": _old_guarded, "average_into": _old_average_into,
        "average_states_into": _old_average_states_into, "download": _old_download,
        "upload": _old_upload, "train_whole": _old_train_whole,
        "train_split": _old_train_split, "load_into": lambda m, s: m.load_state_dict(s)}


@contextlib.contextmanager
def old_code_paths(monkeypatch):
    with monkeypatch.context() as m:
        for module in (base, centralized, fl, local, sflv1, sflv2, sl):
            for name, fn in _OLD.items():
                if hasattr(module, name):
                    m.setattr(module, name, fn)
        yield


def _tensors(obj, prefix=""):
    """Every tensor of a nested state (``prefix/key/...`` -> tensor)."""
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_tensors(v, f"{prefix}/{k}"))
    elif isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            out.update(_tensors(v, f"{prefix}/{i}"))
    return out


def _bits(t):
    if t.is_floating_point():  # -0.0 and 0.0 differ here; torch.equal would not tell
        return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
    return t


def _outcome(config):
    h, s = train(config, data=DATA, progress=False)
    records = jsonable([{k: v for k, v in r.items() if k != "seconds"} for r in h.records])
    return (_tensors({"strategy": s.state_dict(), "global": s.model_for(0).state_dict()}),
            records, h.events, dict(s.run.wire.counts))


BIT_IDENTITY = {
    "centralized": dict(strategy="centralized"),
    "local-sgd-mixed-rejects": dict(strategy="local", optimizer="sgd", lr=1e3, sites=3,
                                    rounds=3),
    "fl-3-sites": dict(strategy="fl", sites=3, seed=1),
    "fl-adam-mixed-rejects": dict(strategy="fl", lr=1e5, sites=3, rounds=3),
    "sl-sgd-mixed-rejects": dict(strategy="sl", optimizer="sgd", lr=1e4, sites=3, rounds=3),
    "sflv1-dropout-schedule": dict(strategy="sflv1", sites=3,
                                   dropout_schedule={0: [1], 1: [0, 2]}),
    "sflv2-all-rejected": dict(strategy="sflv2", lr=1e6),
    "sflv2-first-rejected-then-ok": dict(strategy="sflv2", lr=1e5, sites=3, rounds=3),
    "sflv2-noisy-lossy-wire": dict(strategy="sflv2", noise_std=0.2, loss_up=0.2,
                                   loss_down=0.1, clip_grad=0.5),
    "sflv2-no-calibration-model-codec": dict(strategy="sflv2", bn_calibration=0,
                                             codec="model=int8"),
}


@pytest.mark.parametrize("name", list(BIT_IDENTITY))
def test_a_default_run_computes_bit_for_bit_what_the_old_code_paths_did(name, monkeypatch):
    config = cfg(**BIT_IDENTITY[name])
    with old_code_paths(monkeypatch):
        want = _outcome(config)
    assert base.guarded is not _old_guarded  # the context restored the new code
    got = _outcome(config)
    assert got[0].keys() == want[0].keys() and len(got[0]) > 100
    for k, t in want[0].items():
        assert got[0][k].dtype == t.dtype and torch.equal(_bits(got[0][k]), _bits(t)), k
    assert got[1:] == want[1:]  # every record (loss, Dice, bytes, status), events, bytes
    assert any(r.get("status") == "rejected" for r in got[1]) == ("reject" in name)


# ------------------------------------------------------------------- the guard
def _poisoned_turn(net, opt, x, y):
    def fn():
        stats = base.train_whole(net, opt, [(x, y)], nn.functional.binary_cross_entropy_with_logits)
        with torch.no_grad():
            net[0].weight.fill_(float("nan"))
        return stats
    return fn


def _small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Conv2d(4, 1, 1))


class _Staged(nn.Sequential):
    def run(self, env):
        return {"logits": self(env["x"])}


@pytest.mark.parametrize("warm", [False, True])
def test_a_rejected_turn_restores_weights_buffers_and_optimizer_state(warm):
    net = _Staged(*_small_net())
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, foreach=True)
    x, y = torch.randn(4, 1, 8, 8), (torch.rand(4, 1, 8, 8) > 0.5).float()
    if warm:  # the optimizer already has moments and step counts
        base.guarded([net], [opt], lambda: base.train_whole(
            net, opt, [(x, y)], nn.functional.binary_cross_entropy_with_logits))
    before = _old_snapshot(net.state_dict())
    opt_before = _old_snapshot(opt.state_dict())
    stats = base.guarded([net], [opt], _poisoned_turn(net, opt, x, y))
    assert stats["status"] == "rejected"
    after, opt_after = net.state_dict(), opt.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert after["1.num_batches_tracked"] == before["1.num_batches_tracked"]
    assert opt_after["state"].keys() == opt_before["state"].keys()
    assert len(opt_after["state"]) == (len(list(net.parameters())) if warm else 0)
    for i, st in opt_before["state"].items():
        for k, v in st.items():
            assert torch.equal(opt_after["state"][i][k], v), (i, k)
    assert opt_after["param_groups"] == opt_before["param_groups"]
    # and the next turn trains exactly as if the rejected one had never happened
    ok = base.guarded([net], [opt], lambda: base.train_whole(
        net, opt, [(x, y)], nn.functional.binary_cross_entropy_with_logits))
    assert ok["status"] == "ok"


def _top_level_kernels(fn) -> int:
    """Top-level aten operations that run a kernel (views and detach do not)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    views = {"aten::as_strided", "aten::view", "aten::detach", "aten::reshape",
             "aten::split_with_sizes", "aten::alias"}
    return sum(1 for e in prof.events() if e.name.startswith("aten::")
               and e.name not in views
               and (e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::")))


def test_the_guard_costs_the_same_operations_for_any_number_of_tensors():
    counts = []
    for layers in (3, 30):
        net = nn.Sequential(*(nn.Linear(4, 4) for _ in range(layers)))
        opt = torch.optim.Adam(net.parameters(), foreach=True)
        net(torch.ones(2, 4)).sum().backward()
        opt.step()  # moments and step counts exist

        counts.append(_top_level_kernels(functools.partial(
            base.guarded, [net], [opt], lambda: {"train_loss": 1.0})))
    assert counts[0] == counts[1] < 20, counts


# -------------------------------------------------------------- tensor helpers
def test_clone_copies_every_bit_and_the_layout():
    a = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    a[0, 0, 0, 0] = -0.0
    ts = [a, torch.tensor([float("inf"), -1e-42]), torch.tensor(7), torch.zeros(0),
          torch.randn(3, dtype=torch.float64), torch.randn(4, 6).t()]
    copies = T.clone(ts)
    for t, c in zip(ts, copies):
        assert c.dtype == t.dtype and c.shape == t.shape
        assert torch.equal(_bits(c), _bits(t))
        assert c.data_ptr() != t.data_ptr() or t.numel() == 0
    assert copies[0].stride() == a.stride()
    ts[0].add_(1)
    assert not torch.equal(copies[0], ts[0])


def test_all_finite_and_load_into():
    assert T.all_finite([torch.ones(3), torch.tensor(5), torch.zeros(0)])
    assert not T.all_finite([torch.ones(3), torch.tensor([1.0, float("nan")])])
    assert not T.all_finite([torch.tensor([float("-inf")], dtype=torch.float16)])
    a, b = _small_net(), _small_net()
    with torch.no_grad():
        b[0].weight.add_(1)
    T.load_into(a, b.state_dict())
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())
    with pytest.raises(RuntimeError, match="Missing key"):
        T.load_into(a, {"0.weight": b[0].weight})


# -------------------------------------------------------------------- options
def test_the_options_are_config_fields_with_flags_and_are_recorded():
    assert RunConfig().precision == "fp32" and not RunConfig().channels_last
    assert PRECISIONS == ("fp32", "bf16", "fp16")
    with pytest.raises(ValueError, match="precision"):
        RunConfig(precision="fp8")
    with pytest.raises(ValueError, match="channels_last"):
        RunConfig(channels_last="yes")
    parser = argparse.ArgumentParser()
    runflags.add_run_flags(parser)
    args = parser.parse_args(["--precision", "bf16", "--channels-last", "--compile"])
    c = runflags.config_from_flags(args)
    assert (c.precision, c.channels_last, c.compile) == ("bf16", True, True)
    assert runflags.given(parser.parse_args([])) == {}
    h, _ = train(cfg(strategy="sflv2", rounds=1, precision="bf16", channels_last=True),
                 data=DATA, progress=False)
    assert (h.config["precision"], h.config["channels_last"], h.config["compile"]) == (
        "bf16", True, False)
    assert RunConfig.from_dict(h.config).precision == "bf16"


def test_a_default_run_keeps_its_plain_loss():
    assert not isinstance(Run(cfg(), data=DATA, progress=False).loss_fn, TrainingLoss)
    assert isinstance(Run(cfg(precision="bf16"), data=DATA, progress=False).loss_fn,
                      TrainingLoss)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
@pytest.mark.parametrize("strategy", ["centralized", "sflv2"])
def test_mixed_precision_trains_on_the_cpu(precision, strategy):
    h, s = train(cfg(strategy=strategy, rounds=3, precision=precision), data=DATA,
                 progress=False)
    losses = [r["train_loss"] for r in h.rows(GLOBAL)]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
    assert h.faults()["rejected"] == 0
    ref, _ = train(cfg(strategy=strategy, rounds=3), data=DATA, progress=False)
    assert losses == pytest.approx([r["train_loss"] for r in ref.rows(GLOBAL)], rel=0.02)
    weights = s.model_for(0).state_dict()
    assert all(v.dtype == torch.float32 for v in weights.values() if v.is_floating_point())


def test_mixed_precision_sends_half_width_activations():
    wires = {}
    for precision in ("fp32", "bf16"):
        _, s = train(cfg(strategy="sflv2", rounds=1, bn_calibration=0, precision=precision),
                     data=DATA, progress=False)
        wires[precision] = s.run.wire
    for kind in ("activation", "gradient"):
        assert wires["bf16"].bytes(kind=kind) * 2 == wires["fp32"].bytes(kind=kind)
    assert wires["bf16"].bytes(kind="model") == wires["fp32"].bytes(kind="model")


def test_fp16_scales_the_loss_and_unscales_before_clipping(monkeypatch):
    seen = []
    real = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm):
        seen.append(max(p.grad.abs().max().item() for p in params if p.grad is not None))
        return real(params, max_norm)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    h, _ = train(cfg(strategy="sflv2", rounds=1, precision="fp16", clip_grad=1e6),
                 data=DATA, progress=False)
    assert seen and max(seen) < 100  # unscaled: the scale is 65536
    assert math.isfinite(h.rows()[-1]["train_loss"])


def test_channels_last_steps_as_contiguous_does():
    run = Run(cfg(strategy="sflv2"), data=DATA, progress=False)
    x, y = next(run.batches(run.sites[0].train_idx, 0, 0))
    grads = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        net = copy.deepcopy(run.net).to(memory_format=fmt)
        split = Split(net, run.split.front, run.split.back)
        loss = split_train_step(split, split.client_part(), split.server_part(),
                                x.contiguous(memory_format=fmt), y, run.loss_fn, Wire())
        grads.append((loss, [p.grad for p in net.parameters()]))
    (l0, g0), (l1, g1) = grads
    assert torch.allclose(l0, l1, rtol=1e-5)
    for a, b in zip(g0, g1):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize("strategy", ["centralized", "sflv1"])
def test_a_channels_last_run_learns_what_a_contiguous_one_learns(strategy):
    h0, _ = train(cfg(strategy=strategy), data=DATA, progress=False)
    h1, b = train(cfg(strategy=strategy, channels_last=True), data=DATA, progress=False)
    conv = next(v for v in b.model_for(0).state_dict().values() if v.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    # Adam steps a parameter whose gradient is ~0 by +-lr whatever its sign: weights drift
    # apart by rounding alone, so the run is compared by what it reports
    for r0, r1 in zip(h0.records, h1.records, strict=True):
        assert r1["train_loss"] == pytest.approx(r0["train_loss"], rel=1e-4, nan_ok=True)
        assert r1["dice"] == pytest.approx(r0["dice"], abs=0.01)
        assert r1["bytes_up"] == r0["bytes_up"] and r1["bytes_down"] == r0["bytes_down"]


@pytest.mark.slow  # compiling on a CPU takes about a minute when inductor's cache is cold
def test_a_compiled_run_trains_close_to_eager():
    c = dict(strategy="sflv2", rounds=2, bn_calibration=0)
    h0, a = train(cfg(**c), data=DATA, progress=False)
    h1, b = train(cfg(**c, compile=True), data=DATA, progress=False)
    assert h1.config["compile"] is True
    assert [r["train_loss"] for r in h1.rows()] == pytest.approx(
        [r["train_loss"] for r in h0.rows()], rel=1e-4)
    wa, wb = a.model_for(0).state_dict(), b.model_for(0).state_dict()
    for k in wa:
        assert torch.allclose(wa[k].float(), wb[k].float(), atol=2e-2), k
