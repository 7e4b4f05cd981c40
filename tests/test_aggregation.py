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
