"""Kvasir-SEG (Jha et al., MMM 2020): 1,000 colonoscopy images with polyp masks.

Real layout, exactly as the official archive unpacks::

    Kvasir-SEG/images/<id>.jpg     RGB, 332x487 up to 1920x1072
    Kvasir-SEG/masks/<id>.jpg      same name; JPEG, so grey values around 0 and 255
                                   (or <id>.png: masks converted to 8-bit grey, 16-bit
                                   or RGB(A) PNG are read too)
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
from skimage.filters import gaussian
from tqdm.auto import tqdm

from ._synth import draw_curves, smooth_noise
from .base import (
    EMPTY,
    MISSING_MASK,
    DataError,
    Item,
    Scan,
    SegData,
    decode_items,
    is_junk,
    read_binary_mask,
    read_image,
    register_dataset,
    spread,
)

CLASS_NAMES = ("background", "polyp")
MASK_EXTS = (".jpg", ".png")  # the mask formats read, in order of preference
_ID_CHARS = np.array(list(string.ascii_lowercase + string.digits))
__all__ = ["CLASS_NAMES", "MASK_EXTS", "decode_kvasir", "find_root", "list_pairs", "load_kvasir",
           "read_binary_mask", "read_image", "scan_kvasir", "synth_polyp_image",
           "synthesize_kvasir"]


def find_root(root: Path) -> Path:
    """The ``Kvasir-SEG`` folder: ``root`` itself or ``root/Kvasir-SEG``."""
    for cand in (root / "Kvasir-SEG", root):
        if (cand / "images").is_dir() and (cand / "masks").is_dir():
            return cand
    raise DataError(
        f"no Kvasir-SEG data under {root}: expected {root}/Kvasir-SEG/images/*.jpg and "
        f"{root}/Kvasir-SEG/masks/*.jpg or *.png (make synthetic data with "
        f"`medseg-kit data synth --dataset kvasir --out {root}`)", root, EMPTY)


def scan_kvasir(root: Path, **_) -> Scan:
    """List the (image, mask) pairs; an image without its mask is a problem, a mask without
    its image (or any other file the loader does not read) is an extra file.

    The mask of ``images/<id>.jpg`` is ``masks/<id>.jpg``, or ``masks/<id>.png`` (masks
    converted to PNG: 8-bit grey, 16-bit or RGB(A), decoded by the mask policy of
    :mod:`~medseg_kit.data.base`); the extension's case does not matter and ``.jpg`` wins
    when both are there. A mask in another format is named in the problem.
    """
    base = find_root(Path(root))
    scan = Scan(base, synthetic=(base / "SYNTHETIC").is_file())
    entries = sorted(p for p in (base / "images").iterdir() if not is_junk(p))
    images = [p for p in entries if p.suffix.lower() == ".jpg"]
    if not images:
        scan.problems.append(DataError(f"{base / 'images'} holds no .jpg images",
                                       base / "images", EMPTY))
        return scan
    bbox_file = base / "kavsir_bboxes.json"
    boxes = {}
    if bbox_file.is_file():
        scan.side_files.append(bbox_file)
        try:
            boxes = json.loads(bbox_file.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            scan.problems.append(DataError(f"cannot parse {bbox_file}: {e}", bbox_file))
        else:
            if not isinstance(boxes, dict):
                scan.problems.append(DataError(
                    f"{bbox_file} holds a JSON {type(boxes).__name__}; expected an object "
                    f'{{"<id>": {{"height", "width", "bbox": [...]}}, ...}}', bbox_file))
                boxes = {}
    by_stem: dict[str, list[Path]] = {}
    for p in sorted((base / "masks").iterdir()):
        if not is_junk(p):
            by_stem.setdefault(p.stem, []).append(p)
    used: set[Path] = set()
    for img in images:
        found = by_stem.get(img.stem, [])
        m = _pick_mask(img, found)
        if m is not None:
            used.add(m)
            scan.items.append(Item(img.stem, img, (m,), {"bboxes": _bboxes(boxes, img.stem)}))
            continue
        expected = base / "masks" / img.name
        others = [p for p in found if p.is_file()]
        if others:
            used.update(others)  # named in the problem; not listed again as unused
            scan.problems.append(DataError(
                f"image {img} has no mask in a format the loader reads: found "
                f"{', '.join(str(p) for p in others)}; expected {expected} (or "
                f"{expected.with_suffix('.png')})", others[0], MISSING_MASK))
        else:
            scan.problems.append(DataError(
                f"image {img} has no mask; expected {expected} (or "
                f"{expected.with_suffix('.png')})", expected, MISSING_MASK))
    scan.extra = [p for p in entries if p.suffix.lower() != ".jpg"]
    scan.extra += [p for ps in by_stem.values() for p in ps if p not in used]
    return scan


def _pick_mask(image: Path, found: list[Path]) -> Path | None:
    """The mask of ``image`` among the files of the same stem: the exact name first, then
    the first ``.jpg``, then the first ``.png`` (any case)."""
    files = [p for p in found if p.is_file()]
    for p in files:
        if p.name == image.name:
            return p
    for ext in MASK_EXTS:
        for p in files:
            if p.suffix.lower() == ext:
                return p
    return None


def _bboxes(boxes: dict, image_id: str) -> list:
    """The ``bbox`` list of ``image_id`` in ``kavsir_bboxes.json`` (empty when absent or
    not a list)."""
    entry = boxes.get(image_id, {})
    bbox = entry.get("bbox", []) if isinstance(entry, dict) else []
    return bbox if isinstance(bbox, list) else []


def list_pairs(root: Path) -> list[tuple[Path, Path]]:
    """(image, mask) pairs; raises DataError naming every image without a mask."""
    scan = scan_kvasir(root)
    scan.raise_problems("kvasir")
    return [(it.image, it.masks[0]) for it in scan.items]


def decode_kvasir(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """Full-size RGB image and 0/1 mask (JPEG or PNG mask thresholded at 128)."""
    img = read_image(item.image)
    return img, read_binary_mask(item.masks[0], img.shape[:2], item.image)


def load_kvasir(root: Path, size: int = 128, progress: bool = True,
                limit: int | None = None) -> SegData:
    """Read Kvasir-SEG from its official layout and resize every pair to ``size``.

    Metadata per sample: ``id``, ``path``, original ``height``/``width`` and the
    ``bboxes`` from ``kavsir_bboxes.json`` (empty list when the file is absent).
    ``limit`` keeps that many samples, evenly spread over the sorted list.
    """
    scan = scan_kvasir(Path(root))
    scan.raise_problems("kvasir")
    images, masks, meta = decode_items("kvasir", spread(scan.items, limit), decode_kvasir,
                                       size, progress)
    return SegData("kvasir", images, masks, CLASS_NAMES, meta, scan.synthetic)


# ------------------------------------------------------------------ synthetic
def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    return smooth_noise(rng, shape, sigma)


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
    # blood vessels: thin, branching, slightly blurred dark-red lines
    vessels = draw_curves(rng, h, w, int(rng.integers(4, 10)), (0.15, 0.5), 1.5, 10)
    vessels = np.clip(gaussian(vessels, 0.7) * 1.6, 0, 1)[..., None]
    img *= 1 - vessels * np.array([0.14, 0.34, 0.30]) * rng.uniform(0.6, 1.0)
    mask = np.zeros((h, w), bool)
    boxes = []
    for _ in range(1 if rng.random() < 0.85 else 2):
        r = rng.uniform(0.10, 0.26) * min(h, w)
        cy, cx = rng.uniform(r, h - r), rng.uniform(r, w - r)
        d = _blob(rng, h, w, cy, cx, r)
        inside = d < 1
        dome = np.sqrt(np.clip(1 - d ** 2, 0, 1))
        ly, lx = rng.uniform(-0.6, -0.2), rng.uniform(-0.6, 0.2)  # light from above
        shade = 0.72 + 0.36 * dome + 0.35 * dome * (ly * (yy - cy) + lx * (xx - cx)) / r
        pale = np.array([rng.uniform(225, 245), rng.uniform(150, 185), rng.uniform(135, 165)])
        # surface: a fine pit pattern and a faint vessel network on the mucosa of the polyp
        ptex = 1 + 0.07 * _smooth_noise(rng, (h, w), 2.5) + 0.05 * _smooth_noise(rng, (h, w), 6)
        mix = rng.uniform(0.3, 0.5)
        polyp = (mix * pale + (1 - mix) * base)[None, None, :] * (shade * ptex)[..., None]
        alpha = gaussian(inside.astype(float), sigma=1.5)[..., None]
        img = img * (1 - alpha) + polyp * alpha
        # a darker rim where the polyp meets the wall
        rim = np.exp(-((d - 1.05) / 0.08) ** 2)
        img *= (1 - 0.18 * rim)[..., None]
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


register_dataset("kvasir", load_kvasir, synthesize_kvasir, scan=scan_kvasir,
                 decode=decode_kvasir, class_names=CLASS_NAMES)
