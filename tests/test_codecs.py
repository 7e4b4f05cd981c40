"""The wire's codecs, codec specs, Laplace noise, byte accounting without sending, and the
pin that today's settings ("none", "fp16", "int8", noise, loss) stay bit-identical."""

import math

import pytest
import torch

from medseg_kit.wire import (
    CODEC_KINDS,
    CODECS,
    DIRECTIONS,
    KINDS,
    NOISES,
    Bf16,
    Codec,
    Fp16,
    Int8,
    Int8PerChannel,
    TopK,
    Wire,
    check_codec,
    make_codec,
    parse_codec,
)


# ---------------------------------------------------- the pin: today's wire, bit for bit
class _OldWire:
    """The wire before codec specs (issue #10): its ``send`` and ``_encode`` copied
    verbatim, but for the counters kept in a plain dict. The reference of the pin."""

    def __init__(self, codec="none", noise_std=0.0, loss_up=0.0, loss_down=0.0, seed=0):
        self.codec, self.noise_std = codec, float(noise_std)
        self.loss = {"up": float(loss_up), "down": float(loss_down)}
        self.generator = torch.Generator().manual_seed(seed)
        self.counts = {}

    def send(self, tensors, direction, kind, requires_grad=None):
        out = {}
        for name, t in tensors.items():
            t = t.detach()
            if t.is_floating_point() and kind in ("activation", "gradient"):
                t, nbytes = self._encode(t, direction, kind)
            else:
                nbytes = t.numel() * t.element_size()
            self.counts[(direction, kind, name)] = self.counts.get((direction, kind, name),
                                                                   0) + nbytes
            if kind == "activation" and t.is_floating_point():
                want = True if requires_grad is None else requires_grad.get(name, True)
                t.requires_grad_(want)
            out[name] = t
        return out

    def _encode(self, t: torch.Tensor, direction: str, kind: str) -> tuple[torch.Tensor, int]:
        if kind == "activation" and self.noise_std > 0:
            t = t + self.noise_std * torch.randn(t.shape, generator=self.generator).to(t)
        frac = self.loss[direction]
        if frac > 0:
            rows = t.reshape(-1, t.shape[-1])
            keep = (torch.rand(rows.shape[0], generator=self.generator) >= frac).to(t)
            t = (rows * keep[:, None]).reshape(t.shape)
        if self.codec == "fp16":
            return t.half().to(t.dtype), t.numel() * 2
        if self.codec == "int8":
            lo, hi = t.min(), t.max()
            scale = (hi - lo).clamp_min(1e-12) / 255.0
            q = torch.round((t - lo) / scale)
            return q * scale + lo, t.numel() + 8
        return t, t.numel() * t.element_size()


_AS_INT = {torch.float32: torch.int32, torch.float64: torch.int64, torch.float16: torch.int16}


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal bit for bit (tells -0.0 from 0.0 and compares NaNs by payload)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype in _AS_INT:
        a, b = a.contiguous().view(_AS_INT[a.dtype]), b.contiguous().view(_AS_INT[b.dtype])
    return torch.equal(a, b)


def _messages(seed: int):
    """A round's worth of messages of every kind, with random floats (some float64), pooling
    indices, labels and a module's state."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, dtype=torch.float32):
        return (torch.randn(*shape, generator=g) * 3).to(dtype)

    act = {"enc1": r(4, 6, 8, 8).requires_grad_(), "e64": r(4, 3, 8, 5, dtype=torch.float64),
           "idx": torch.randint(0, 64, (4, 6, 4, 4), generator=g)}
    state = {"w": r(6, 3, 3, 3), "b": r(6), "bn.num_batches_tracked": torch.tensor(7)}
    return [({"enc1": act["enc1"], "e64": act["e64"], "idx": act["idx"]}, "up", "activation",
             {"enc1": True, "e64": False}),
            ({"dec2": r(4, 6, 8, 8)}, "down", "activation", None),
            ({"label": torch.randint(0, 2, (4, 8, 8), generator=g).to(torch.uint8)}, "up",
             "label", None),
            ({"dec2": r(4, 6, 8, 8)}, "up", "gradient", None),
            ({"enc1": r(4, 6, 8, 8), "e64": r(4, 3, 8, 5, dtype=torch.float64)}, "down",
             "gradient", None),
            (state, "up", "model", None),
            (state, "down", "model", None),
            ({"enc1": r(4, 6, 8, 8)}, "up", "activation", None)]


@pytest.mark.parametrize("codec", ["none", "fp16", "int8"])
@pytest.mark.parametrize("noise_std,loss_up,loss_down,seed", [
    (0.0, 0.0, 0.0, 0), (0.3, 0.0, 0.0, 1), (0.0, 0.25, 0.1, 2), (0.5, 0.2, 0.3, 3)])
def test_todays_settings_are_bit_identical_to_the_old_wire(codec, noise_std, loss_up,
                                                           loss_down, seed):
    kw = dict(codec=codec, noise_std=noise_std, loss_up=loss_up, loss_down=loss_down,
              seed=seed)
    old, new = _OldWire(**kw), Wire(**kw)
    for step, (tensors, direction, kind, rg) in enumerate(_messages(seed) * 2):
        want = old.send(tensors, direction, kind, rg)
        got = new.send(tensors, direction, kind, rg)
        assert got.keys() == want.keys()
        for name in want:
            assert _same_bits(got[name], want[name]), (step, kind, name)
            assert got[name].requires_grad == want[name].requires_grad
            assert got[name].is_leaf
        # the same random stream: same generator, same draws, same order
        assert torch.equal(new.generator.get_state(), old.generator.get_state()), step
        assert dict(new.counts) == old.counts, step


def test_the_default_wire_returns_model_weights_untouched():
    w = Wire("int8", noise_std=0.5, loss_up=0.5, loss_down=0.5)
    state = {"w": torch.randn(6, 3, 3, 3), "n": torch.tensor(3)}
    before = w.generator.get_state()
    got = w.send(state, "up", "model")
    assert all(got[k].data_ptr() == state[k].data_ptr() for k in state)  # not even copied
    assert w.bytes(kind="model") == 6 * 27 * 4 + 8
    assert torch.equal(w.generator.get_state(), before)


# ------------------------------------------------------------------- the registry
def test_every_codec_name_is_a_valid_spec_and_makes_its_codec():
    assert CODECS == ("none", "fp16", "bf16", "int8", "int8c", "topk")
    kinds = [Codec, Fp16, Bf16, Int8, Int8PerChannel, TopK]
    for name, cls in zip(CODECS, kinds):
        assert type(make_codec(name)) is cls
        assert Wire(codec=name).codecs[("up", "activation")] == make_codec(name)
    assert make_codec("topk:0.25") == TopK(0.25) and make_codec("topk:0.25").name == "topk:0.25"
    assert make_codec("topk").name == "topk:0.1"


# ----------------------------------------------------------------- round-trip error
def _log_uniform(n, lo, hi, seed=0):
    g = torch.Generator().manual_seed(seed)
    mag = torch.exp(torch.empty(n).uniform_(math.log(lo), math.log(hi), generator=g))
    return torch.where(torch.rand(n, generator=g) < 0.5, -mag, mag)


def test_fp16_relative_error_is_at_most_2_to_the_minus_11_for_normal_values():
    t = _log_uniform(100_000, 1e-4, 6e4)  # fp16's normal range is [6.1e-5, 65504]
    got, n = Fp16().encode(t)
    assert n == t.numel() * 2
    assert ((got - t).abs() / t.abs()).max() <= 2.0 ** -11


def test_bf16_relative_error_is_at_most_2_to_the_minus_8():
    t = _log_uniform(100_000, 1e-30, 1e30)
    got, n = Bf16().encode(t)
    assert n == t.numel() * 2
    assert ((got - t).abs() / t.abs()).max() <= 2.0 ** -8


def test_int8_error_is_at_most_half_a_step_of_the_tensor_grid():
    t = torch.randn(4, 8, 16, 16) * 5 + 1
    got, n = Int8().encode(t)
    scale = (t.max() - t.min()) / 255
    assert n == t.numel() + 8
    assert (got - t).abs().max() <= scale / 2 * (1 + 1e-4)
    assert len(torch.unique(got)) <= 256


def test_int8c_error_is_at_most_half_a_step_of_each_channel_grid():
    t = torch.randn(4, 6, 9, 9) * torch.logspace(-3, 2, 6)[None, :, None, None]
    got, n = Int8PerChannel().encode(t)
    assert n == t.numel() + 8 * 6
    err = (got - t).abs().amax(dim=(0, 2, 3))
    scale = (t.amax(dim=(0, 2, 3)) - t.amin(dim=(0, 2, 3))) / 255
    assert (err <= scale / 2 * (1 + 1e-4)).all()
    # the small channels are kept: a single grid would round them all to one value
    assert err[0] < (Int8().encode(t)[0] - t).abs().amax(dim=(0, 2, 3))[0] / 100
    for c in range(6):
        assert len(torch.unique(got[:, c])) <= 256


def test_int8c_of_a_vector_is_int8_and_a_constant_channel_is_exact():
    v = torch.randn(50)
    assert torch.equal(Int8PerChannel().encode(v)[0], Int8().encode(v)[0])
    assert Int8PerChannel().encode(v)[1] == 50 + 8
    t = torch.randn(3, 4, 5)
    t[:, 2] = 1.5
    assert (Int8PerChannel().encode(t)[0][:, 2] == 1.5).all()


@pytest.mark.parametrize("fraction,numel,k", [(0.1, 30, 3), (0.1, 31, 4), (0.05, 1000, 50),
                                              (1e-9, 100, 1), (1.0, 17, 17), (0.3, 10, 3)])
def test_topk_keeps_exactly_the_k_largest_values(fraction, numel, k):
    codec = TopK(fraction)
    assert codec.k(numel) == k
    t = torch.randn(numel, generator=torch.Generator().manual_seed(numel)) + 1e-3
    got, n = codec.encode(t.reshape(1, -1))
    got = got.reshape(-1)
    kept = got != 0
    assert int(kept.sum()) == k
    assert torch.equal(got[kept], t[kept])  # sent exactly
    if k < numel:
        assert t[kept].abs().min() >= t[~kept].abs().max()
    assert n == k * (4 + 4)


def test_topk_counts_the_values_at_the_tensors_own_width():
    t = torch.randn(2, 3, 10, dtype=torch.float64)
    assert TopK(0.5).encode(t)[1] == 30 * (8 + 4)
    assert TopK(0.5).nbytes((2, 3, 10), torch.float16) == 30 * (2 + 4)


# ------------------------------------------------------------------------- bytes
_SHAPE = (3, 5, 6, 7)
_N = math.prod(_SHAPE)


@pytest.mark.parametrize("spec,expected", [
    ("none", _N * 4), ("fp16", _N * 2), ("bf16", _N * 2), ("int8", _N + 8),
    ("int8c", _N + 8 * 5), ("topk:0.1", math.ceil(_N / 10) * (4 + 4)),
    ("topk:1", _N * 8)])
def test_bytes_are_what_the_format_implies_and_nbytes_equals_what_is_counted(spec, expected):
    t = torch.randn(_SHAPE)
    codec = make_codec(spec)
    assert codec.encode(t)[1] == codec.nbytes(_SHAPE, torch.float32) == expected
    w = Wire(codec=spec, noise_std=0.1, loss_up=0.1)
    for direction in DIRECTIONS:
        for kind in ("activation", "gradient"):
            w.reset()
            w.send({"t": t}, direction, kind)
            assert w.bytes() == w.nbytes(_SHAPE, torch.float32, direction, kind) == expected
        assert w.nbytes(_SHAPE, torch.float32, direction, "model") == _N * 4
        assert w.nbytes(_SHAPE, torch.float32, direction, "label") == _N * 4
        assert w.nbytes(_SHAPE, torch.float32, direction, "calibration") == expected
        assert w.nbytes(_SHAPE, torch.int64, direction, "activation") == _N * 8


@pytest.mark.parametrize("codec", [make_codec(n) for n in CODECS] + [TopK(0.37)])
@pytest.mark.parametrize("shape", [(), (0,), (1,), (13,), (2, 0, 3), (4, 3), (2, 3, 4, 5)])
def test_every_codec_counts_what_it_says_for_any_shape(codec, shape):
    t = torch.randn(shape)
    got, n = codec.encode(t)
    assert got.shape == t.shape and got.dtype == t.dtype
    assert n == codec.nbytes(shape, torch.float32)


# -------------------------------------------------------------------- the spec
def test_a_single_name_means_activations_and_gradients_both_ways():
    table = parse_codec("int8c")
    assert set(table) == {(d, k) for d in DIRECTIONS for k in CODEC_KINDS}
    for d in DIRECTIONS:
        assert table[(d, "activation")] == table[(d, "gradient")] == Int8PerChannel()
        assert table[(d, "model")] == Codec()


def test_rules_set_each_direction_and_kind_and_later_rules_win():
    table = parse_codec("activation=fp16, gradient=topk:0.05,model=int8,up.activation=int8c,"
                        "down.model=none")
    assert table[("up", "activation")] == Int8PerChannel()
    assert table[("down", "activation")] == Fp16()
    assert table[("up", "gradient")] == table[("down", "gradient")] == TopK(0.05)
    assert (table[("up", "model")], table[("down", "model")]) == (Int8(), Codec())
    table = parse_codec("up.activation=int8c,down.gradient=bf16")
    assert [table[p] for p in [("up", "activation"), ("down", "gradient")]] == [
        Int8PerChannel(), Bf16()]
    assert all(c == Codec() for p, c in table.items()
               if p not in [("up", "activation"), ("down", "gradient")])
    assert parse_codec("fp16,gradient=none")[("down", "gradient")] == Codec()


@pytest.mark.parametrize("spec,normal", [
    ("none", "none"), ("fp16", "fp16"), ("int8", "int8"), ("topk", "topk:0.1"),
    ("topk:0.050", "topk:0.05"), (" fp16 ", "fp16"),
    ("activation=bf16,gradient=bf16", "bf16"), ("model=none,int8", "int8"),
    ("fp16,model=int8", "activation=fp16,gradient=fp16,model=int8"),
    ("model=int8c,up.activation=fp16", "up.activation=fp16,model=int8c"),
    ("up.gradient=topk:0.5,down.gradient=topk:0.5", "gradient=topk:0.5"),
    ("activation=fp16,down.activation=none", "up.activation=fp16")])
def test_check_codec_normalizes_and_keeps_the_meaning(spec, normal):
    assert check_codec(spec) == normal
    assert parse_codec(normal) == parse_codec(spec)
    assert Wire(codec=spec).codec == normal


@pytest.mark.parametrize("spec,rule", [
    ("bf8", "bf8"), ("fp16,int4", "int4"), ("activation=fp8", "activation=fp8"),
    ("label=fp16", "label=fp16"), ("up.calibration=fp16", "up.calibration=fp16"),
    ("sideways.activation=int8", "sideways.activation=int8"), ("weights=int8", "weights=int8"),
    ("topk:0", "topk:0"), ("topk:1.5", "topk:1.5"), ("topk:nan", "topk:nan"),
    ("topk:x", "topk:x"), ("fp16:2", "fp16:2"), ("", ""), ("fp16,,int8", ""),
    ("activation=", "activation=")])
def test_a_bad_spec_is_one_line_naming_the_rule_and_the_valid_names(spec, rule):
    with pytest.raises(ValueError) as e:
        check_codec(spec)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"bad rule {rule!r}" in msg
    assert "none, fp16, bf16, int8, int8c" in msg and "topk:<fraction" in msg
    with pytest.raises(ValueError, match="codec"):
        Wire(codec=spec)


# ----------------------------------------------------------------- model transfers
def _state():
    g = torch.Generator().manual_seed(5)
    return {"conv.weight": torch.randn(8, 4, 3, 3, generator=g),
            "conv.bias": torch.randn(8, generator=g),
            "bn.num_batches_tracked": torch.tensor(12)}


def test_model_transfers_are_encoded_when_a_model_rule_is_given():
    state = _state()
    w = Wire("activation=fp16,down.model=int8c", noise_std=1.0, loss_up=0.5, loss_down=0.5)
    before = w.generator.get_state()
    down = w.send(state, "down", "model")
    assert torch.equal(down["conv.weight"], Int8PerChannel().encode(state["conv.weight"])[0])
    assert not torch.equal(down["conv.weight"], state["conv.weight"])
    assert torch.equal(down["conv.bias"], Int8().encode(state["conv.bias"])[0])
    assert down["bn.num_batches_tracked"] is not state["bn.num_batches_tracked"]
    assert torch.equal(down["bn.num_batches_tracked"], state["bn.num_batches_tracked"])
    assert w.bytes("down", "model") == (288 + 8 * 4) + (8 + 8) + 8
    up = w.send(state, "up", "model")  # no up.model rule: sent as it is
    assert all(torch.equal(up[k], state[k]) for k in state)
    assert w.bytes("up", "model") == 288 * 4 + 8 * 4 + 8
    # model weights get the codec only: no noise, no loss, no random draw
    assert torch.equal(w.generator.get_state(), before)


@pytest.mark.parametrize("spec", ["fp16", "int8", "topk:0.1", "activation=int8,gradient=bf16"])
def test_model_transfers_are_not_encoded_without_a_model_rule(spec):
    state = _state()
    w = Wire(spec)
    for d in DIRECTIONS:
        got = w.send(state, d, "model")
        assert all(torch.equal(got[k], state[k]) for k in state)
    assert w.bytes(kind="model") == 2 * (288 * 4 + 8 * 4 + 8)


def test_a_topk_model_rule_sends_the_largest_weights():
    state = _state()
    w = Wire("model=topk:0.25")
    got = w.send(state, "up", "model")
    assert int((got["conv.weight"] != 0).sum()) == 72 and int((got["conv.bias"] != 0).sum()) == 2
    assert w.bytes() == (72 + 2) * 8 + 8


# ---------------------------------------------------------------------------- noise
def test_laplace_noise_has_the_requested_std_and_a_laplace_shape():
    assert NOISES == ("gaussian", "laplace")
    zeros = torch.zeros(1000, 1000)
    lap = Wire(noise_std=0.5, noise="laplace", seed=3).send({"a": zeros}, "up",
                                                            "activation")["a"].detach()
    gau = Wire(noise_std=0.5, seed=3).send({"a": zeros}, "up", "activation")["a"].detach()
    for x in (lap, gau):
        assert abs(x.mean().item()) < 0.002
        assert x.std().item() == pytest.approx(0.5, rel=0.005)
    # E|X| tells them apart: b = 0.5/sqrt(2) = 0.354 for Laplace, 0.5*sqrt(2/pi) = 0.399
    assert lap.abs().mean().item() == pytest.approx(0.5 / math.sqrt(2), rel=0.005)
    assert gau.abs().mean().item() == pytest.approx(0.5 * math.sqrt(2 / math.pi), rel=0.005)
    assert torch.isfinite(lap).all()


def test_laplace_noise_is_deterministic_under_the_seed_and_only_on_activations():
    t = torch.randn(4, 3, 16, 16)

    def sends(seed):
        w = Wire(noise_std=0.2, noise="laplace", loss_up=0.1, seed=seed)
        return [w.send({"t": t}, "up", kind)["t"].detach() for kind in
                ("activation", "gradient", "calibration", "activation")]

    a, b, c = sends(7), sends(7), sends(8)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    assert not torch.equal(a[0], a[3])  # the stream moves on
    kept = a[1].reshape(-1, 16).abs().sum(1) > 0  # gradients: rows lost, no noise
    assert torch.equal(a[1].reshape(-1, 16)[kept], t.reshape(-1, 16)[kept])


def test_bad_noise_is_named():
    with pytest.raises(ValueError, match="noise must be one of gaussian, laplace"):
        Wire(noise="uniform")


# ---------------------------------------------------------------- account, calibration
@pytest.mark.parametrize("spec", ["none", "int8", "activation=topk:0.2,gradient=int8c,"
                                  "up.model=bf16"])
def test_account_counts_what_send_would_without_changing_or_drawing_anything(spec):
    assert "calibration" in KINDS
    msgs = _messages(0)
    kw = dict(codec=spec, noise_std=0.3, loss_up=0.2, loss_down=0.2, seed=4)
    sent, counted = Wire(**kw), Wire(**kw)
    for tensors, direction, kind, _ in msgs:
        copies = {k: v.detach().clone() for k, v in tensors.items()}
        before = counted.generator.get_state()
        total = counted.account(tensors, direction, kind)
        assert torch.equal(counted.generator.get_state(), before)
        assert all(torch.equal(tensors[k], copies[k]) for k in tensors)
        sent.send(tensors, direction, kind)
        assert total == sum(counted.nbytes(t.shape, t.dtype, direction, kind)
                            for t in tensors.values())
    assert dict(counted.counts) == dict(sent.counts)
    calib = {"enc1": torch.randn(4, 6, 8, 8)}
    counted.reset()
    counted.account(calib, "up", "calibration")
    assert counted.bytes(kind="calibration") == counted.nbytes((4, 6, 8, 8), torch.float32,
                                                               "up", "activation")


def test_calibration_is_sent_like_an_activation_but_collects_no_gradient():
    t = torch.randn(2, 3, 8, 8)
    w, ref = Wire("int8", noise_std=0.1, seed=2), Wire("int8", noise_std=0.1, seed=2)
    got = w.send({"t": t}, "up", "calibration")["t"]
    want = ref.send({"t": t}, "up", "activation")["t"]
    assert not got.requires_grad
    assert torch.equal(got, want.detach())
    assert w.bytes("up", "calibration") == ref.bytes("up", "activation")


# ----------------------------------------------------------------- state and devices
def test_state_round_trip_keeps_device_generators_and_reads_old_states():
    w = Wire(noise_std=0.3, seed=1)
    w.send({"a": torch.randn(2, 4)}, "up", "activation")
    saved_cuda = torch.Generator().manual_seed(99).get_state()  # a state for a device not here
    state = w.state_dict()
    state["device_generators"] = {"cuda:0": saved_cuda}
    w2 = Wire(noise_std=0.3, seed=5)
    w2.load_state_dict(state)
    back = w2.state_dict()
    assert torch.equal(back["device_generators"]["cuda:0"], saved_cuda)  # kept until used
    assert torch.equal(back["generator"], state["generator"]) and back["counts"] == state["counts"]
    old = {"generator": state["generator"], "counts": state["counts"]}  # before issue #10
    w3 = Wire(noise_std=0.3)
    w3.load_state_dict(old)
    assert w3.state_dict()["device_generators"] == {}
    t = torch.randn(3, 5)
    assert torch.equal(w2.send({"t": t}, "up", "activation")["t"],
                       w3.send({"t": t}, "up", "activation")["t"])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("noise", NOISES)
def test_noise_on_a_device_is_drawn_there_and_resumes_exactly(noise):
    t = torch.randn(4, 8, 32, 32, device="cuda")
    w = Wire(noise_std=0.2, loss_up=0.1, noise=noise, seed=3)
    cpu_before = w.generator.get_state()
    first = w.send({"t": t}, "up", "activation")["t"]
    assert first.device == t.device
    assert torch.equal(w.generator.get_state(), cpu_before)  # nothing drawn on the CPU
    state = w.state_dict()
    assert list(state["device_generators"]) == ["cuda:0"]
    second = w.send({"t": t}, "up", "activation")["t"]
    again = Wire(noise_std=0.2, loss_up=0.1, noise=noise, seed=3)
    assert torch.equal(again.send({"t": t}, "up", "activation")["t"], first)  # seeded
    resumed = Wire(noise_std=0.2, loss_up=0.1, noise=noise, seed=3)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.send({"t": t}, "up", "activation")["t"], second)
    assert (first - t).std().item() == pytest.approx(0.2 * math.sqrt(0.9), rel=0.05)

