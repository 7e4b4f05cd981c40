import pytest
import torch

from medseg_kit.wire import Wire


def test_counts_and_fresh_leaves():
    w = Wire()
    a = torch.ones(2, 3, 4, 5, requires_grad=True) * 2
    got = w.send({"a": a, "idx": torch.zeros(2, 3, dtype=torch.int64)}, "up", "activation")
    assert got["a"].is_leaf and got["a"].requires_grad and got["a"].grad_fn is None
    assert not got["idx"].requires_grad
    assert w.bytes_up == 2 * 3 * 4 * 5 * 4 + 2 * 3 * 8
    assert w.bytes_down == 0
    w.send({"g": torch.ones(10)}, "down", "gradient")
    assert w.bytes("down", "gradient") == 40
    assert w.by_tensor()["up/activation/idx"] == 48


def test_fp16_halves_the_bytes_and_keeps_values_close():
    w = Wire(codec="fp16")
    t = torch.randn(4, 8, 8)
    got = w.send({"t": t}, "up", "activation")["t"]
    assert w.bytes_up == t.numel() * 2
    assert torch.allclose(got, t, atol=1e-2)


def test_int8_quantizes():
    w = Wire(codec="int8")
    t = torch.linspace(-1, 1, 1000)
    got = w.send({"t": t}, "up", "gradient")["t"]
    assert w.bytes_up == 1000 + 8
    assert (got - t).abs().max() <= 2 / 255 / 2 + 1e-6


def test_packet_loss_zeroes_about_that_fraction_of_rows():
    w = Wire(loss_up=0.3, seed=1)
    t = torch.ones(64, 16, 32, 32)
    got = w.send({"t": t}, "up", "activation")["t"]
    rows = got.reshape(-1, 32)
    dropped = (rows.abs().sum(1) == 0).float().mean().item()
    assert 0.27 < dropped < 0.33
    assert ((rows == 0) | (rows == 1)).all()
    w.send({"t": t}, "down", "activation")  # no loss downwards
    assert (w.send({"t": t}, "down", "gradient")["t"] == 1).all()


@pytest.mark.parametrize("kw", [{"codec": "bf8"}, {"codec": "activation=int4"}, {"loss_up": 1.5},
                                {"noise_std": -1}, {"noise": "uniform"}])
def test_bad_settings_are_named(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        Wire(**kw)
