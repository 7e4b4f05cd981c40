"""Batch augmentations: deterministic, image and mask moved together, off by default."""

import numpy as np
import pytest
import torch

from medseg_kit.data.augment import GEOMETRY_ONLY, Augment, AugmentConfig, augment_batch


def _batch(n=6, h=24, w=24, k=4):
    g = torch.Generator().manual_seed(0)
    y = torch.zeros(n, h, w, dtype=torch.long)
    for i in range(n):  # an off-centre square and a bar: not symmetric under flips/turns
        y[i, 3:10, 4 + i:12 + i] = 1 + i % (k - 1)
        y[i, 15:18, 2:20] = k - 1
    x = torch.rand(n, 3, h, w, generator=g) * 0.2
    x[:, 0] = y.float() / (k - 1)
    return x, y


def test_deterministic_given_a_generator():
    x, y = _batch()
    a = augment_batch(x, y, torch.Generator().manual_seed(5))
    b = augment_batch(x, y, torch.Generator().manual_seed(5))
    c = augment_batch(x, y, torch.Generator().manual_seed(6))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_inputs_untouched_and_types_kept():
    x, y = _batch()
    x0, y0 = x.clone(), y.clone()
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(1))
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert xa.shape == x.shape and ya.shape == y.shape and ya.dtype == torch.long
    assert xa.min() >= 0 and xa.max() <= 1


@pytest.mark.parametrize("cfg", [
    AugmentConfig(affine=0.0, brightness=0, contrast=0, saturation=0),  # flips and turns
    AugmentConfig(hflip=0, vflip=0, rot90=False, affine=1.0, brightness=0, contrast=0,
                  saturation=0),
])
def test_image_and_mask_move_together(cfg):
    x, y = _batch(n=8)
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(2), cfg)
    recovered = torch.round(xa[:, 0] * 3).long()
    agree = (recovered == ya).float().mean().item()
    if cfg.affine == 0:
        assert agree == 1.0  # flips and 90-degree turns are exact
        assert not torch.equal(ya, y)
    else:
        assert agree > 0.93  # bilinear vs nearest differ only on edges
        assert set(ya.unique().tolist()) <= set(y.unique().tolist())


def test_colour_only_touches_the_image():
    x, y = _batch()
    cfg = AugmentConfig(hflip=0, vflip=0, rot90=False, affine=0)
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(3), cfg)
    assert torch.equal(ya, y) and not torch.equal(xa, x)


def test_non_square_keeps_shape():
    x, y = _batch(h=16, w=24)
    xa, ya = augment_batch(x, y, torch.Generator().manual_seed(0), GEOMETRY_ONLY)
    assert xa.shape == x.shape and ya.shape == y.shape


def test_augment_is_off_by_default_and_resumable():
    x, y = _batch()
    off = Augment()
    assert off(x, y)[0] is x
    on = Augment(enabled=True, seed=3, degrees=5)
    assert on.config.degrees == 5
    on(x, y)
    state = on.state_dict()
    nxt = on(x, y)
    other = Augment(enabled=True, seed=99)
    other.load_state_dict(state)
    again = other(x, y)
    assert torch.equal(nxt[0], again[0]) and torch.equal(nxt[1], again[1])


def test_bad_shapes():
    with pytest.raises(ValueError):
        augment_batch(torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 9, dtype=torch.long))


def test_grey_images():
    x, y = _batch()
    xa, _ = augment_batch(x[:, :1], y, torch.Generator().manual_seed(0))
    assert xa.shape[1] == 1 and np.isfinite(xa.numpy()).all()
