"""NoPeek's distance correlation and its place in the protocol: the site's own loss term
on what it sends, refused where nothing is sent."""

import math

import pytest
import torch

from medseg_kit.federated import RunConfig, train
from medseg_kit.losses import distance_correlation

from .synthetic import discs as disc_data


def test_a_hand_computed_case():
    # x = 0, 1, 2 and z = 0, 1, 3: double-centred distance matrices A and B give
    # dCov^2 = 20/27, dVar^2(x) = 40/81, dVar^2(z) = 32/27 (sums over the 9 entries / 9)
    x = torch.tensor([[0.0], [1.0], [2.0]])
    z = torch.tensor([[0.0], [1.0], [3.0]])
    want = math.sqrt((20 / 27) / math.sqrt(40 / 81 * 32 / 27))
    assert distance_correlation(x, z).item() == pytest.approx(want, abs=1e-5)


def test_identical_and_affine_copies_score_one_and_independent_samples_near_zero():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))  # a rotation
    assert distance_correlation(x, x).item() == pytest.approx(1.0, abs=1e-4)
    assert distance_correlation(x, 3 * x @ q + 2).item() == pytest.approx(1.0, abs=1e-4)
    y = torch.randn(4000, 2, generator=g)
    w = torch.randn(4000, 2, generator=g)
    assert distance_correlation(y, w).item() < 0.06  # the sample statistic's bias is small


def test_it_is_differentiable_and_images_are_flattened():
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    z = torch.randn(8, 5, 2, 2)
    distance_correlation(x, z).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def cfg(**kw):
    return RunConfig(**{**dict(model="unet", width=4, size=32, sites=2, rounds=1, batch_size=4,
                               device="cpu", strategy="sflv2"), **kw})


def test_nopeek_reaches_the_site_front():
    data = disc_data(n=20)
    _, s0 = train(cfg(), data=data, progress=False)
    _, s1 = train(cfg(nopeek=1.0), data=data, progress=False)
    front = s0.run.split.front_indices
    name = s0.run.net.stage_names[front[0]]
    a = s0.run.net.stages[name].state_dict()
    b = s1.run.net.stages[name].state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the penalty reached the front
    _, again = train(cfg(), data=data, progress=False)  # and nothing else differs by chance
    c = again.run.net.stages[name].state_dict()
    assert all(torch.equal(a[k], c[k]) for k in a)


def test_nopeek_needs_a_split():
    with pytest.raises(ValueError, match="nopeek"):
        train(cfg(strategy="fl", nopeek=0.5), data=disc_data(n=20), progress=False)
    with pytest.raises(ValueError, match="nopeek"):
        RunConfig(nopeek=-1)
