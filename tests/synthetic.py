"""Tiny in-memory data for tests: bright discs on noise, learnable in a few steps."""

import numpy as np

from medseg_kit.data import SegData


def discs(n=24, size=32, seed=0, classes=2) -> SegData:
    """``n`` noise images with one bright disc each (class 1); with ``classes == 3`` the
    disc's centre is a second, darker class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    images = rng.integers(0, 90, (n, size, size, 3)).astype(np.uint8)
    masks = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        cy, cx, r = rng.uniform(8, size - 8, 2).tolist() + [rng.uniform(4, 8)]
        d2 = (yy - cy) ** 2 + (xx - cx) ** 2
        m = d2 < r ** 2
        masks[i] = m
        images[i][m] = np.clip(images[i][m].astype(int) + 140, 0, 255)
        if classes == 3:
            core = d2 < (r / 2) ** 2
            masks[i][core] = 2
            images[i][core] = images[i][core] // 2
    names = ("background", "disc", "core")[:classes]
    return SegData("discs", images, masks, names, synthetic=True)
