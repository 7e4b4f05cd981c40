"""BatchNorm statistics that belong to the weights being evaluated.

A BatchNorm layer normalises with the statistics of the batch while training and with
its *running* statistics when evaluated. PyTorch keeps those as a moving average
(momentum 0.1) that starts at mean 0, variance 1 and needs some 20 to 30 batches to
describe the network's activations. A federated site sees a few batches per round
(3 sites x 32 images, batch 8: 4 batches) and every round starts again from the averaged
model, so the evaluated model normalises with statistics that are still mostly 0 and 1:
its activations shrink layer after layer and it predicts "all background" for rounds,
although its weights have learned. And even after many batches the average lags the
weights, which move a lot within a round at a teaching learning rate, so the test Dice
swings from round to round for no reason that has to do with the strategy.

The run loop therefore *calibrates* every model it is about to evaluate (as
``torch.optim.swa_utils.update_bn`` does for averaged weights, with the population
statistics of "precise BatchNorm"): after the round, with the final weights, each site
that uses the model runs a forward pass over a few of its training images, and every
BatchNorm's running mean and variance become those of its inputs over all these images
together. Sites can do this without sharing an image (sums of inputs and of their
squares add up across sites), and for a one-site run it is the same computation as for
centralized training on the same images. Training itself never reads running statistics
(it normalises with each batch's own), so calibration changes what is evaluated and
saved, not how the model learns; the running statistics that FedAvg averages are
overwritten by it. Like the rest of the evaluation it is not counted on the wire.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def batchnorms(module: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``module`` that keep running statistics."""
    return [m for m in module.modules()
            if isinstance(m, _BatchNorm) and m.track_running_stats]


def calibration_sample(train_idx: np.ndarray, n: int, seed: int, round_: int, site: int
                       ) -> np.ndarray:
    """``n`` training images of a site (all if it has fewer), drawn afresh each round from
    ``(seed, round, site)`` so a resumed run draws the same ones."""
    if n >= len(train_idx):
        return np.asarray(train_idx)
    rng = np.random.default_rng([seed, round_, site, 17])
    return np.sort(rng.choice(np.asarray(train_idx), n, replace=False))


@torch.no_grad()
def calibrate(net: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Set the running statistics of every BatchNorm of ``net`` to the mean and variance of
    its inputs over all images of ``batches`` (images only).

    The forward pass runs as in training (each BatchNorm normalises with its batch, the
    rest of ``net`` in eval mode) while the mean and variance of every batch, per layer and
    channel, are summed; the statistics are then those of all the images together (the variance
    includes the spread between batches, e.g. between sites whose images look different),
    which is what sites can compute without sharing an image: sums add up. This is the
    "precise BatchNorm" of Wu and Johnson (2021, arXiv:2105.07576).

    Returns the number of batches seen; with none (or no BatchNorm) ``net`` is unchanged.
    """
    layers = batchnorms(net)
    if not layers:
        return 0
    sums: dict[nn.Module, list] = {m: [0, 0.0, 0.0] for m in layers}

    def add(module, inputs, output):
        # momentum 1: the running statistics now hold this batch's own mean and unbiased
        # variance, computed by the layer itself (no second pass over its input)
        x = inputs[0]
        k = x.numel() // x.shape[1]
        mean = module.running_mean.double()
        var = module.running_var.double() * ((k - 1) / k)  # biased, for the sums
        acc = sums[module]
        acc[0] += k
        acc[1] = acc[1] + k * mean
        acc[2] = acc[2] + k * (var + mean.square())

    handles = [m.register_forward_hook(add) for m in layers]
    saved = [(m.momentum, m.num_batches_tracked.clone(), m.running_mean.clone(),
              m.running_var.clone()) for m in layers]
    was = net.training
    net.eval()
    for m in layers:
        m.train()
        m.momentum = 1.0
        m.reset_running_stats()  # (a NaN left there would survive the weight 1 - 1 = 0)
    n = 0
    try:
        for x in batches:
            net(x)
            n += 1
    finally:
        for h in handles:
            h.remove()
        net.train(was)
    for m, (momentum, count, old_mean, old_var) in zip(layers, saved):
        m.momentum = momentum
        m.num_batches_tracked.copy_(count)  # calibrating is not training
        k, s1, s2 = sums[m]
        if k == 0:
            m.running_mean.copy_(old_mean)
            m.running_var.copy_(old_var)
            continue
        mean = s1 / k
        var = (s2 / k - mean.square()).clamp_min(0) * (k / max(k - 1, 1))  # unbiased
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
    return n
