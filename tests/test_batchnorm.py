"""BatchNorm calibration: the statistics that are evaluated belong to the weights that are
evaluated (see medseg_kit.federated.batchnorm)."""

import numpy as np
import torch
from torch import nn

from medseg_kit.federated.batchnorm import calibrate, calibration_sample


def test_calibration_sets_the_statistics_of_all_calibration_images_together():
    net = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3))
    net.train()
    batches = [torch.randn(4, 1, 5, 5) * (i + 1) + i for i in range(3)]
    with torch.no_grad():
        feats = torch.cat([net[0](b) for b in batches])
    assert calibrate(net, iter(batches)) == 3
    bn = net[1]
    # pooled over every image (the spread between batches included), unbiased
    assert torch.allclose(bn.running_mean, feats.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, feats.var((0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.1 and net.training  # put back as it was


def test_calibration_with_no_batch_changes_nothing():
    bn = nn.BatchNorm2d(2)
    bn.running_mean.fill_(3.0)
    assert calibrate(bn, iter([])) == 0
    assert torch.equal(bn.running_mean, torch.full((2,), 3.0))


def test_calibration_sample_is_a_function_of_seed_round_site():
    idx = np.arange(40)
    a = calibration_sample(idx, 8, seed=0, round_=3, site=1)
    assert np.array_equal(a, calibration_sample(idx, 8, seed=0, round_=3, site=1))
    assert not np.array_equal(a, calibration_sample(idx, 8, seed=0, round_=4, site=1))
    assert len(set(a)) == 8 and np.array_equal(calibration_sample(idx[:5], 8, 0, 0, 0), idx[:5])
