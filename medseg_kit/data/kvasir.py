"""Kvasir-SEG (Jha et al., MMM 2020): 1,000 colonoscopy images with polyp masks.

Real layout, exactly as the official archive unpacks::

    Kvasir-SEG/images/<id>.jpg     RGB, 332x487 up to 1920x1072
    Kvasir-SEG/masks/<id>.jpg      same name; JPEG, so grey values around 0 and 255
    Kvasir-SEG/kavsir_bboxes.json  {"<id>": {"height", "width", "bbox": [{"label",
                                    "xmin", "ymin", "xmax", "ymax"}, ...]}, ...}

Masks are thresholded at 128. :func:`synthesize_kvasir` writes look-alike data in the same
layout (pink mucosa, paler dome-shaded polyps, specular highlights, dark vignetting), so
this loader is exercised on it in tests, CI and Binder.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage import io
from skimage.filters import gaussian
from tqdm.auto import tqdm

from .base import DataError, SegData, register_dataset, resize_pair

CLASS_NAMES = ("background", "polyp")
_ID_CHARS = np.array(list(string.ascii_lowercase + string.digits))


def find_root(root: Path) -> Path:
    """The ``Kvasir-SEG`` folder: ``root`` itself or ``root/Kvasir-SEG``."""
    for cand in (root / "Kvasir-SEG", root):
        if (cand / "images").is_dir() and (cand / "masks").is_dir():
            return cand
    raise DataError(
        f"no Kvasir-SEG data under {root}: expected {root}/Kvasir-SEG/images/*.jpg and "
        f"{root}/Kvasir-SEG/masks/*.jpg (make synthetic data with "
        f"`medseg-kit data synth --dataset kvasir --out {root}`)")


def list_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs; raises DataError naming every image without a mask."""
    base = find_root(root)
    images = sorted(p for p in (base / "images").glob("*.jpg") if not p.name.startswith("._"))
    if not images:
        raise DataError(f"{base / 'images'} holds no .jpg images")
    pairs, missing = [], []
    for img in images:
        m = base / "masks" / img.name
        (pairs if m.is_file() else missing).append((img, m))
    if missing:
        names = ", ".join(str(m) for _, m in missing[:10])
        raise DataError(f"{len(missing)} image(s) in {base / 'images'} have no mask; "
                        f"expected {names}{' ...' if len(missing) > 10 else ''}")
    return pairs


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image; DataError naming the file if it cannot be decoded."""
    try:
        img = io.imread(path)
    except Exception as e:  # truncated or not an image: say which file
        raise DataError(f"cannot read image {path}: {e}") from e
    if img.ndim == 2:
        img = np.stack([img] * 3, axis=-1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def read_binary_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A 0/1 mask from a (JPEG-noisy) grey or RGB mask, thresholded at 128."""
    try:
        m = io.imread(path)
    except Exception as e:
        raise DataError(f"cannot read mask {path}: {e}") from e
    if m.ndim == 3:
        m = m[..., :3].max(axis=-1)
    if m.shape != shape:
        raise DataError(f"mask {path} is {m.shape[1]}x{m.shape[0]} but its image is "
                        f"{shape[1]}x{shape[0]}; expected the same size")
    if m.dtype != np.uint8:  # 16-bit: scale to 8 bits before thresholding
        m = (m.astype(np.float64) / np.iinfo(m.dtype).max * 255).astype(np.uint8)
    return (m >= 128).astype(np.uint8)


def load_kvasir(root: Path, size: int = 128, progress: bool = True) -> SegData:
    """Read Kvasir-SEG from its official layout and resize every pair to ``size``.

    Metadata per sample: ``id``, ``path``, original ``height``/``width`` and the
    ``bboxes`` from ``kavsir_bboxes.json`` (empty list when the file is absent).
    """
    pairs = list_pairs(root)
    base = find_root(root)
    bbox_file = base / "kavsir_bboxes.json"
    boxes = json.loads(bbox_file.read_text()) if bbox_file.is_file() else {}
    images = np.empty((len(pairs), size, size, 3), np.uint8)
    masks = np.empty((len(pairs), size, size), np.uint8)
    meta = []
    for i, (ip, mp) in enumerate(tqdm(pairs, desc="kvasir", disable=not progress,
                                      leave=False)):
        img = read_image(ip)
        msk = read_binary_mask(mp, img.shape[:2])
        images[i], masks[i] = resize_pair(img, msk, size)
        meta.append({"id": ip.stem, "path": str(ip), "height": img.shape[0],
                     "width": img.shape[1], "bboxes": boxes.get(ip.stem, {}).get("bbox", [])})
    synthetic = (base / "SYNTHETIC").is_file()
    return SegData("kvasir", images, masks, CLASS_NAMES, meta, synthetic)


# ------------------------------------------------------------------ synthetic
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    f = gaussian(rng.standard_normal(shape), sigma=sigma)
    return f / (np.abs(f).max() + 1e-8)


def _blob(rng: np.random.Generator, h: int, w: int, cy: float, cx: float, r: float
          ) -> np.ndarray:
    """A soft (0..1) irregular round blob: a circle with a wavy Fourier boundary."""
    yy, xx = np.mgrid[0:h, 0:w]
    theta = np.arctan2(yy - cy, xx - cx)
    rad = np.ones_like(theta)
    for k in range(2, 6):
        rad += rng.uniform(0, 0.12 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    aspect = rng.uniform(0.75, 1.25)
    d = np.hypot((yy - cy) * aspect, (xx - cx) / aspect) / (r * rad)
    return d


def synth_polyp_image(rng: np.random.Generator, h: int, w: int
                      ) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """One synthetic colonoscopy frame, its 0/255 mask and its bounding boxes."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array([rng.uniform(175, 215), rng.uniform(85, 120), rng.uniform(75, 105)])
    tex = 0.10 * _smooth_noise(rng, (h, w), 12) + 0.05 * _smooth_noise(rng, (h, w), 3)
    img = base[None, None, :] * (1 + tex[..., None])
    # folds of the colon wall: darker smooth bands
    fold = np.sin((xx * rng.uniform(-1, 1) + yy * rng.uniform(-1, 1)) / rng.uniform(25, 45)
                  + _smooth_noise(rng, (h, w), 20) * 3)
    img *= (1 - 0.12 * np.clip(fold, 0, 1))[..., None]
    # blood vessels: thin dark-red lines
    for _ in range(rng.integers(1, 4)):
        vessel = np.abs(_smooth_noise(rng, (h, w), rng.uniform(15, 30))) < 0.006
        img[vessel] *= np.array([0.88, 0.72, 0.72])
    mask = np.zeros((h, w), bool)
    boxes = []
    for _ in range(1 if rng.random() < 0.85 else 2):
        r = rng.uniform(0.10, 0.26) * min(h, w)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        d = _blob(rng, h, w, cy, cx, r)
        inside = d < 1
        dome = np.sqrt(np.clip(1 - d ** 2, 0, 1))
        ly, lx = rng.uniform(-0.6, -0.2), rng.uniform(-0.6, 0.2)  # light from above
        shade = 0.78 + 0.30 * dome + 0.25 * dome * (ly * (yy - cy) + lx * (xx - cx)) / r
        pale = np.array([rng.uniform(225, 245), rng.uniform(150, 185), rng.uniform(135, 165)])
        ptex = 1 + 0.06 * _smooth_noise(rng, (h, w), 4)
        polyp = (0.55 * pale + 0.45 * base)[None, None, :] * (shade * ptex)[..., None]
        alpha = gaussian(inside.astype(float), sigma=1.5)[..., None]
        img = img * (1 - alpha) + polyp * alpha
        # a darker rim where the polyp meets the wall
        rim = np.exp(-((d - 1.05) / 0.08) ** 2)
        img *= (1 - 0.25 * rim)[..., None]
        mask |= inside
        ys, xs = np.nonzero(inside)
        boxes.append({"label": "polyp", "xmin": int(xs.min()), "ymin": int(ys.min()),
                      "xmax": int(xs.max()), "ymax": int(ys.max())})
    # specular highlights: small saturated white spots, most on the polyp dome
    for _ in range(rng.integers(4, 12)):
        on_polyp = rng.random() < 0.6 and mask.any()
        if on_polyp:
            ys, xs = np.nonzero(mask)
            k = rng.integers(len(ys))
            sy, sx = ys[k], xs[k]
        else:
            sy, sx = rng.uniform(0, h), rng.uniform(0, w)
        s = rng.uniform(1.0, 3.5)
        spot = np.exp(-(((yy - sy) / s) ** 2 + ((xx - sx) / (s * rng.uniform(1, 2.5))) ** 2))
        img = img + 255 * 1.2 * spot[..., None]
    # endoscope vignetting and the black corners of the circular field of view
    rr = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    img *= np.clip(1 - 0.45 * rr ** 2.5, 0, 1)[..., None]
    img[rr > 1.38] = 0
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255, boxes


def synthesize_kvasir(out: Path, n: int = 200, seed: int = 0,
                      min_size: tuple[int, int] = (240, 300),
                      max_size: tuple[int, int] = (360, 460), progress: bool = True) -> Path:
    """Write ``n`` synthetic polyp images in the real Kvasir-SEG layout under ``out``.

    Deterministic from ``seed``. Image sizes vary between ``min_size`` and ``max_size``
    (height, width), as the real images do (smaller, to stay quick). A ``SYNTHETIC`` marker
    file says what the folder holds. Returns ``out`` (pass it to :func:`load_kvasir`).
    """
    base = out / "Kvasir-SEG"
    (base / "images").mkdir(parents=True, exist_ok=True)
    (base / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    bboxes = {}
    for _ in tqdm(range(n), desc="synthesizing kvasir", disable=not progress, leave=False):
        h = int(rng.integers(min_size[0], max_size[0] + 1))
        w = int(rng.integers(min_size[1], max_size[1] + 1))
        name = "".join(rng.choice(_ID_CHARS, 25))
        img, mask, boxes = synth_polyp_image(rng, h, w)
        iio.imwrite(base / "images" / f"{name}.jpg", img, quality=90)
        iio.imwrite(base / "masks" / f"{name}.jpg", mask, quality=90)
        bboxes[name] = {"height": h, "width": w, "bbox": boxes}
    (base / "kavsir_bboxes.json").write_text(json.dumps(bboxes))
    (base / "SYNTHETIC").write_text(f"synthetic Kvasir-SEG look-alike: n={n} seed={seed}\n")
    return out


register_dataset("kvasir", load_kvasir, synthesize_kvasir)
