"""The protocol's two halves: a site and a server exchanging plain named tensors.

Driven by hand (through a wire, or through a numpy round trip as a message transport
would carry them), and composed in :func:`split_train_step`, they compute bit for bit
what the one-function protocol before them computed (a frozen copy below); the site
never sends the image or the mask in a U-shaped split; each side can step alone; and the
strategies train from their narrow context alone.
"""

import copy
import functools

import numpy as np
import pytest
import torch

from medseg_kit.federated import RunConfig
from medseg_kit.federated.run import Run, nopeek
from medseg_kit.federated.strategies import STRATEGY_CLASSES, RoundContext, make_strategy
from medseg_kit.losses import make_loss
from medseg_kit.models import create_model
from medseg_kit.models.staged import INPUT, OUTPUT
from medseg_kit.protocol import (
    LABEL,
    ServerHalf,
    SiteHalf,
    clip_grads,
    send_activations,
    split_train_step,
    step_side,
)
from medseg_kit.split import Split, valid_cuts
from medseg_kit.wire import Wire

from .synthetic import discs as disc_data

MODELS = ["unet", "deeplabv3plus", "ducknet", "cgnet"]


def _size(net):
    return next(s for s in (32, 64, 96, 128, 224) if net.accepts(s))


def _setup(name, vanilla):
    torch.manual_seed(0)
    net = create_model(name, width=4).train()
    cut = (net.default_cut[0], len(net)) if vanilla else net.default_cut
    size = _size(net)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, size, size, generator=g)
    y = (torch.rand(3, size, size, generator=g) > 0.5).long()
    return net, cut, x, y


def _bits(t):
    if t.is_floating_point():  # -0.0 and 0.0 differ here; torch.equal would not tell
        return t.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()])
    return t


def _assert_bitwise(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(_bits(a), _bits(b))


def _assert_same_grads(net_a, net_b):
    for (name, p), q in zip(net_a.named_parameters(), net_b.parameters(), strict=True):
        assert q.grad is not None, name  # every parameter of these models learns
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.equal(_bits(p.grad), _bits(q.grad)), name


def _noisy_wire():
    return Wire(codec="activation=int8,gradient=fp16", noise_std=0.05, loss_up=0.1,
                loss_down=0.05, seed=3)


# ------------------------------------ the one-function protocol before the halves, frozen
def _old_grads(sent):
    return {k: v.grad for k, v in sent.items() if v.requires_grad and v.grad is not None}


def _old_backward(outputs, grads, extra=None):
    pairs = [(outputs[k], g) for k, g in grads.items() if outputs[k].requires_grad]
    if extra is not None:
        pairs.append((extra, torch.ones_like(extra)))
    if pairs:
        torch.autograd.backward([p[0] for p in pairs], [p[1] for p in pairs])


def _old_split_train_step(split, client, server, x, y, loss_fn, wire, front_penalty=None):
    f, b, n = split.front, split.back, split.n
    env = client.run({INPUT: x}, 0, f)
    up = wire.send({t: env[t] for t in split.up}, "up", "activation",
                   requires_grad=split.learned)
    kept = {t: env[t].detach().requires_grad_(env[t].requires_grad) for t in split.kept}
    senv = server.run(dict(up), f, b)
    if split.labels_to_server:
        y_server = wire.send({"label": y.to(torch.uint8)}, "up", "label")["label"].to(y.dtype)
        loss = loss_fn(senv[OUTPUT], y_server)
        loss.backward()
    else:
        down = wire.send({t: senv[t] for t in split.down}, "down", "activation",
                         requires_grad=split.learned)
        benv = client.run({**kept, **down}, b, n)
        loss = loss_fn(benv[OUTPUT], y)
        loss.backward()
        g_down = wire.send(_old_grads(down), "up", "gradient")
        _old_backward({t: senv[t] for t in g_down}, g_down)
    g_up = wire.send(_old_grads(up), "down", "gradient")
    front_grads = dict(g_up)
    for t, g in _old_grads(kept).items():
        front_grads[t] = front_grads[t] + g if t in front_grads else g
    extra = front_penalty(x, {t: env[t] for t in split.up}) if front_penalty else None
    _old_backward({t: env[t] for t in front_grads}, front_grads, extra)
    return loss.detach()


def _reference(net, cut, x, y, wire, front_penalty=None, step=_old_split_train_step):
    split = Split(net, *cut)
    return step(split, split.client_part(), split.server_part(), x, y, make_loss(), wire,
                front_penalty)


def _by_hand(net, cut, x, y, carry, front_penalty=None):
    """The five steps with the two halves; ``carry(tensors, direction, kind)`` moves a
    message from one side to the other."""
    split = Split(net, *cut)
    site = SiteHalf(split, split.client_part(), make_loss(), front_penalty)
    server = ServerHalf(split, split.server_part(), make_loss())
    down = server.forward(carry(site.front(x, y), "up", "activation"))
    g_down = {}
    if not split.labels_to_server:
        g_down = carry(site.back(carry(down, "down", "activation")), "up", "gradient")
    else:
        assert down == {} and site.loss is None
    site.finish(carry(server.backward(g_down), "down", "gradient"))
    return site.loss if site.loss is not None else server.loss


def _wire_carry(wire, split):
    def carry(tensors, direction, kind):
        if kind == "activation":
            return send_activations(wire, split, tensors, direction)
        return wire.send(tensors, direction, kind)
    return carry


def _numpy_carry(tensors, direction, kind):
    """What a message transport does: arrays out, tensors back (no graph, no grad flag)."""
    out = {k: torch.from_numpy(np.ascontiguousarray(t.detach().cpu().numpy()))
           for k, t in tensors.items()}
    assert all(not t.requires_grad for t in out.values())
    return out


def _through_the_step(other, cut, x, y, wire):
    return _reference(other, cut, x, y, wire, step=split_train_step)


def _through_the_halves(other, cut, x, y, wire):
    return _by_hand(other, cut, x, y, _wire_carry(wire, Split(other, *cut)))


@pytest.mark.parametrize("drive", [_through_the_step, _through_the_halves],
                         ids=["split_train_step", "halves-by-hand"])
@pytest.mark.parametrize("vanilla", [False, True], ids=["u-shaped", "vanilla"])
@pytest.mark.parametrize("name", MODELS)
def test_the_protocol_through_a_wire_computes_what_the_one_function_protocol_did(
        name, vanilla, drive):
    net, cut, x, y = _setup(name, vanilla)
    other = copy.deepcopy(net)
    wire_a, wire_b = _noisy_wire(), _noisy_wire()
    want = _reference(net, cut, x, y, wire_a)
    got = drive(other, cut, x, y, wire_b)
    _assert_bitwise(got, want)
    _assert_same_grads(other, net)
    assert list(wire_b.counts.items()) == list(wire_a.counts.items())
    assert (wire_b.bytes(kind="label") > 0) == vanilla


@pytest.mark.parametrize("vanilla", [False, True], ids=["u-shaped", "vanilla"])
@pytest.mark.parametrize("name", MODELS)
def test_halves_through_numpy_messages_equal_the_one_function_protocol(name, vanilla):
    net, cut, x, y = _setup(name, vanilla)
    other = copy.deepcopy(net)
    want = _reference(net, cut, x, y, Wire())
    got = _by_hand(other, cut, x, y, _numpy_carry)
    _assert_bitwise(got, want)
    _assert_same_grads(other, net)


def test_halves_with_a_front_penalty_equal_the_one_function_protocol():
    net, cut, x, y = _setup("unet", vanilla=False)
    other = copy.deepcopy(net)
    penalty = functools.partial(nopeek, 0.3)
    want = _reference(net, cut, x, y, _noisy_wire(), penalty)
    wire = _noisy_wire()
    got = _by_hand(other, cut, x, y, _wire_carry(wire, Split(other, *cut)), penalty)
    _assert_bitwise(got, want)
    _assert_same_grads(other, net)


@pytest.mark.parametrize("name", ["unet", "ducknet", "cgnet"])
def test_the_site_never_sends_the_image_or_the_mask_in_a_u_shaped_split(name):
    torch.manual_seed(0)
    net = create_model(name, width=4).train()
    size = _size(net)
    x = torch.rand(2, 3, size, size)
    y = (torch.rand(2, size, size) > 0.5).long()
    for cut in valid_cuts(net):  # every U-shaped cut the kit allows by default
        split = Split(net, *cut)
        site = SiteHalf(split, split.client_part(), make_loss())
        sent = site.front(x, y)
        assert INPUT not in sent and LABEL not in sent, cut
        assert set(sent) == set(split.up), cut
        for t in sent.values():
            assert t.is_floating_point() and not t.requires_grad, cut  # plain activations
            assert not (t.shape == x.shape and torch.equal(t, x)), cut
            assert not (t.numel() == y.numel() and torch.equal(t.reshape(y.shape).long(), y)
                        ), cut


def test_vanilla_sends_the_label_as_uint8_and_the_server_computes_the_loss():
    net, cut, x, y = _setup("unet", vanilla=True)
    split = Split(net, *cut)
    sent = SiteHalf(split, split.client_part(), make_loss()).front(x, y)
    assert sent[LABEL].dtype == torch.uint8 and torch.equal(sent[LABEL].long(), y)
    with pytest.raises(ValueError, match="needs loss_fn"):
        ServerHalf(split, split.server_part())


def test_each_side_stepping_alone_equals_the_joint_step():
    """Without fp16 a side that steps by itself (as in a deployment) steps exactly as the
    simulation's joint step of both sides."""
    net, cut, x, y = _setup("unet", vanilla=False)
    other = copy.deepcopy(net)
    steps = []
    for n in (net, other):
        split = Split(n, *cut)
        client, server = split.client_part(), split.server_part()
        oc = torch.optim.Adam(client.parameters(), lr=1e-2)
        os_ = torch.optim.Adam(server.parameters(), lr=1e-2)
        split_train_step(split, client, server, x, y, make_loss(), Wire())
        steps.append((client, server, oc, os_))
    client, server, oc, os_ = steps[0]
    clip_grads(list(server.parameters()), 0.1)
    clip_grads(list(client.parameters()), 0.1)
    os_.step()
    oc.step()
    client, server, oc, os_ = steps[1]
    step_side(oc, list(client.parameters()), clip=0.1)  # the site, in its own process
    step_side(os_, clip=0.1)  # the server; params default to the optimizer's
    for a, b in zip(net.parameters(), other.parameters(), strict=True):
        assert torch.equal(_bits(a), _bits(b))


# ------------------------------------------------------------------ strategies
DATA = disc_data(n=24)


@pytest.mark.parametrize("strategy", list(STRATEGY_CLASSES))
def test_a_strategy_trains_from_its_context_alone(strategy):
    """Built from a RoundContext (no run behind it), a strategy trains the very weights
    the run loop's strategy trains."""
    config = RunConfig(model="unet", width=4, size=32, sites=2, rounds=1, batch_size=4,
                       seed=0, device="cpu", strategy=strategy)
    runs = [Run(config, data=DATA, progress=False) for _ in range(2)]
    ctx = runs[1].round_context()
    assert isinstance(ctx, RoundContext) and ctx.net is runs[1].net
    with pytest.raises(AttributeError):
        ctx.wire = Wire()  # frozen
    made, alone = make_strategy(strategy, runs[0]), STRATEGY_CLASSES[strategy](ctx)
    assert made.run is runs[0] and alone.run is None
    for s in (made, alone):
        s.train_round(0, [0, 1])
    a, b = made.state_dict()["modules"], alone.state_dict()["modules"]
    for k in a:
        for name, t in a[k].items():
            assert torch.equal(_bits(t), _bits(b[k][name])), (k, name)
    assert list(runs[0].wire.counts.items()) == list(runs[1].wire.counts.items())
