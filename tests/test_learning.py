"""Why the federated schemes learn at teaching size: the model that is evaluated carries
BatchNorm statistics of its own final weights (calibration), not PyTorch's running average,
which a site with a few batches a round never brings close to its activations.
(tests/test_batchnorm.py holds the unit tests of the calibration itself.)"""

import pytest
import torch
from torch import nn

from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.federated.batchnorm import batchnorms, calibrate

from .synthetic import discs as disc_data


def cfg(**kw):
    base = dict(model="unet", width=4, size=32, sites=2, rounds=3, batch_size=4, lr=3e-3,
                seed=0, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def test_calibration_matches_one_big_batch_at_every_layer_and_leaves_weights_alone():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3),
                        nn.BatchNorm2d(4))
    x = torch.randn(8, 3, 12, 12)
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    calibrate(net, [x])
    ref = nn.Sequential(*[m for m in net])  # same modules: redo it the plain PyTorch way
    stats = [(m.running_mean.clone(), m.running_var.clone()) for m in batchnorms(net)]
    for m in batchnorms(ref):
        m.reset_running_stats()
        m.momentum = 1.0
    with torch.no_grad():
        ref.train()(x)
    for (mean, var), m in zip(stats, batchnorms(ref)):
        assert torch.allclose(mean, m.running_mean, atol=1e-6)
        assert torch.allclose(var, m.running_var, atol=1e-5)
    for k, v in weights.items():
        assert torch.equal(net.state_dict()[k], v), k


def test_calibration_changes_what_is_evaluated_not_how_the_model_learns():
    data = disc_data(n=24)
    h_cal, s_cal = train(cfg(strategy="sflv2", rounds=2), data=data, progress=False)
    h_ema, s_ema = train(cfg(strategy="sflv2", rounds=2, bn_calibration=0), data=data,
                         progress=False)
    assert [r["train_loss"] for r in h_cal.rows()] == [r["train_loss"] for r in h_ema.rows()]
    a, b = s_cal.run.net.state_dict(), s_ema.run.net.state_dict()
    for k in a:
        if "running" not in k:
            assert torch.equal(a[k], b[k]), k
    assert any(not torch.equal(a[k], b[k]) for k in a if "running" in k)


@pytest.mark.parametrize("strategy", ["sflv2", "fl", "local"])
def test_federated_run_leaves_all_background_in_the_first_rounds(strategy):
    """The symptom of the issue, on tiny data: 3 sites x 12 images, batch 4. With PyTorch's
    running averages the evaluated model predicts (nearly) nothing for two rounds;
    calibrated, the same weights find the discs from the first round on."""
    data = disc_data(n=45)
    config = cfg(strategy=strategy, sites=3, rounds=2)
    ema, _ = train(RunConfig(**{**config.to_dict(), "bn_calibration": 0}), data=data,
                   progress=False)
    cal, _ = train(config, data=data, progress=False)
    assert max(r["dice"] for r in ema.rows(GLOBAL)) < 0.1
    assert min(r["dice"] for r in cal.rows(GLOBAL)) > 0.3


def test_bn_calibration_must_be_off_or_at_least_two_images():
    with pytest.raises(ValueError, match="bn_calibration"):
        cfg(bn_calibration=1)
    with pytest.raises(ValueError, match="bn_calibration"):
        cfg(bn_calibration=-1)
