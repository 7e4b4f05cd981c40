"""Small drawing helpers shared by the synthetic generators (numpy + scikit-image only)."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import zoom
from skimage.draw import line_aa
from skimage.filters import gaussian


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise scaled to [-1, 1].

    Large sigmas are made on a coarser grid and upsampled (same look, far cheaper).
    """
    h, w = shape
    if sigma <= 4:
        f = gaussian(rng.standard_normal(shape), sigma=sigma)
    else:
        step = sigma / 2
        small = (int(np.ceil(h / step)) + 3, int(np.ceil(w / step)) + 3)
        f = gaussian(rng.standard_normal(small), sigma=2.0)
        f = zoom(f, step, order=1)[:h, :w]
    return f / (np.abs(f).max() + 1e-8)


def smoothstep(e0: float, e1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)


def fourier_radius(theta: np.ndarray, coeffs: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """``1 + sum_k a_k cos(k theta + phi_k)`` for k = 2, 3, ...: a wavy closed boundary."""
    r = np.ones_like(theta)
    for k, (a, ph) in enumerate(zip(coeffs, phases), start=2):
        r = r + a * np.cos(k * theta + ph)
    return r


def polar_distance(h: int, w: int, cy: float, cx: float, radius: float, angle: float,
                   aspect: float, coeffs: np.ndarray, phases: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Normalised distance (1 on the boundary) of every pixel to a wavy blob, and the angle.

    The blob is centred at (cy, cx), rotated by ``angle``, stretched by ``aspect`` and its
    boundary radius follows :func:`fourier_radius` in the blob's own frame.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * dx + s * dy, -s * dx + c * dy
    u, v = u / aspect, v * aspect
    theta = np.arctan2(v, u)
    return np.hypot(u, v) / (radius * fourier_radius(theta, coeffs, phases)), theta


def draw_curves(rng: np.random.Generator, h: int, w: int, count: int, length: tuple,
                curvature: float = 0.6, points: int = 12) -> np.ndarray:
    """Anti-aliased thin curves (hairs, fibres) as a [0, 1] coverage map."""
    out = np.zeros((h, w), np.float64)
    for _ in range(count):
        y, x = rng.uniform(-0.1 * h, 1.1 * h), rng.uniform(-0.1 * w, 1.1 * w)
        ang = rng.uniform(0, 2 * np.pi)
        step = rng.uniform(*length) * max(h, w) / points
        bend = rng.normal(0, curvature / points)
        for _ in range(points):
            ang += bend + rng.normal(0, 0.05)
            y2, x2 = y + step * np.sin(ang), x + step * np.cos(ang)
            rr, cc, val = line_aa(int(round(y)), int(round(x)), int(round(y2)), int(round(x2)))
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            np.maximum.at(out, (rr[ok], cc[ok]), val[ok])
            y, x = y2, x2
    return out


def worley(rng: np.random.Generator, h: int, w: int, cell: float,
           where: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Cellular noise: distance to the nearest and second-nearest of jittered grid points.

    ``f2 - f1`` is small on cell walls (a honeycomb), ``f1`` small at the cell centres
    (dots, globules). Both in pixels; computed only where ``where`` is true (elsewhere
    ``f1 = f2 = cell``).
    """
    from scipy.spatial import cKDTree

    gy, gx = np.mgrid[-1:h / cell + 1, -1:w / cell + 1]
    pts = (np.stack([gy.ravel(), gx.ravel()], 1) + rng.uniform(0, 1, (gy.size, 2))) * cell
    f1 = np.full((h, w), float(cell))
    f2 = f1.copy()
    ys, xs = np.nonzero(where) if where is not None else np.mgrid[0:h, 0:w].reshape(2, -1)
    if len(ys):
        d, _ = cKDTree(pts).query(np.stack([ys, xs], 1), k=2)
        f1[ys, xs], f2[ys, xs] = d[:, 0], d[:, 1]
    return f1, f2
