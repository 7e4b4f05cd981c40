"""For every registered model and every valid cut: the split equals the whole.

Run in float64 at a small width and size so that the only differences are summation
order: logits and loss within 1e-10 (absolute), every parameter gradient within
1e-8 relative to its largest entry (plus 1e-10 absolute).
"""

import copy

import pytest
import torch
import torch.nn.functional as F

from medseg_kit.models import create_model, list_models
from medseg_kit.protocol import split_forward, split_train_step
from medseg_kit.split import Split, valid_cuts
from medseg_kit.wire import Wire

SIZE = 32


def small_model(name, num_classes=1):
    torch.manual_seed(0)
    return create_model(name, in_channels=3, num_classes=num_classes, width=4).double()


def input_size(name):
    net = create_model(name, width=4)
    return next(s for s in (SIZE, 64, 96, 128, 224) if net.accepts(s))


def loss_fn(logits, y):
    return F.binary_cross_entropy_with_logits(logits, y.unsqueeze(1).to(logits.dtype))


def cases():
    for name in list_models():
        net = create_model(name, width=4)
        for cut in valid_cuts(net, allow_raw=True, include_vanilla=True):
            yield pytest.param(name, cut, id=f"{name}-{cut[0]}-{cut[1]}")


@pytest.mark.parametrize("name,cut", list(cases()))
def test_split_equals_whole(name, cut):
    net = small_model(name)
    size = input_size(name)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=g, dtype=torch.float64)
    y = (torch.rand(2, size, size, generator=g) > 0.5).long()

    ref = copy.deepcopy(net).train()
    ref_loss = loss_fn(ref(x), y)
    ref_loss.backward()

    split = Split(net.train(), *cut, allow_raw=True)
    loss = split_train_step(split, split.client_part(), split.server_part(), x, y, loss_fn,
                            Wire())
    assert abs(loss.item() - ref_loss.item()) < 1e-10
    for (pname, p), q in zip(net.named_parameters(), ref.parameters(), strict=True):
        assert (p.grad is None) == (q.grad is None), pname
        if q.grad is not None:
            tol = 1e-8 * q.grad.abs().max().item() + 1e-10
            assert (p.grad - q.grad).abs().max().item() <= tol, pname

    net.eval()
    ref.eval()
    with torch.no_grad():
        whole = ref(x)
    out = split_forward(split, split.client_part(), split.server_part(), x)
    assert torch.allclose(out, whole, atol=1e-10, rtol=0)
