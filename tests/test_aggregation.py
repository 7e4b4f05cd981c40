import pytest
import torch

from medseg_kit.federated import fedavg


def test_weighted_mean_by_samples():
    a = {"w": torch.tensor([1.0, 2.0]), "bn.num_batches_tracked": torch.tensor(10)}
    b = {"w": torch.tensor([4.0, 8.0]), "bn.num_batches_tracked": torch.tensor(21)}
    avg = fedavg([a, b], [1, 2])  # weights 1/3, 2/3
    assert torch.allclose(avg["w"], torch.tensor([3.0, 6.0]))
    assert avg["bn.num_batches_tracked"].dtype == torch.int64
    assert avg["bn.num_batches_tracked"].item() == round(10 / 3 + 42 / 3)  # 17


def test_single_state_is_returned_exactly():
    a = {"w": torch.randn(5)}
    assert torch.equal(fedavg([a], [7])["w"], a["w"])


def test_dtype_is_kept():
    a = {"w": torch.ones(2, dtype=torch.float16)}
    assert fedavg([a, a], [1, 1])["w"].dtype == torch.float16


@pytest.mark.parametrize("states,weights,match", [
    ([], [], "at least one"),
    ([{"a": torch.ones(1)}, {"b": torch.ones(1)}], [1, 1], "other keys"),
    ([{"a": torch.ones(1)}], [0], "positive"),
    ([{"a": torch.ones(1)}], [1, 2], "weights"),
])
def test_bad_input(states, weights, match):
    with pytest.raises(ValueError, match=match):
        fedavg(states, weights)


def _per_key(states, weights):
    """FedAvg entry by entry, as the kit computed it before its flat buffers (reference)."""
    ws = [w / float(sum(weights)) for w in weights]
    out = {}
    for k, ref in states[0].items():
        acc = sum(w * s[k].to(torch.float64) for w, s in zip(ws, states))
        out[k] = acc.to(ref.dtype) if ref.is_floating_point() else acc.round().to(ref.dtype)
    return out


def test_flat_buffers_give_the_per_key_result_bit_for_bit():
    g = torch.Generator().manual_seed(0)

    def state(i):
        conv = torch.randn(4, 3, 3, 3, generator=g) * 10 ** (i - 1)
        conv[0, 0, 0, 0] = -0.0
        return {"conv": conv.contiguous(memory_format=torch.channels_last),
                "bias": torch.randn(4, generator=g) * 1e-30,
                "half": torch.randn(5, generator=g).half(),
                "n": torch.tensor(10 + 7 * i),
                "double": torch.randn(2, 2, generator=g, dtype=torch.float64),
                "empty": torch.zeros(0), "scalar": torch.tensor(float(i) / 3)}

    states = [state(i) for i in range(3)]
    got, want = fedavg(states, [3, 1, 5]), _per_key(states, [3, 1, 5])
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and got[k].shape == want[k].shape
        a, b = got[k], want[k]
        if a.is_floating_point():  # bits: -0.0 and 0.0 differ here
            a, b = (t.contiguous().view({2: torch.int16, 4: torch.int32,
                                         8: torch.int64}[t.element_size()]) for t in (a, b))
        assert torch.equal(a, b), k
