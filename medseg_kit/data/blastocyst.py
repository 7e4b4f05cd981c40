"""Human blastocysts (Saeedi et al., IEEE TBME 2017, "BlastsOnline"): five-class masks.

Classes (the one class map of the kit, :data:`CLASS_NAMES`)::

    0 background   1 zona pellucida (ZP)   2 trophectoderm (TE)   3 blastocoel
    4 inner cell mass (ICM)

Two on-disk layouts are read; ``layout="auto"`` picks the one it finds, and refuses
(naming both) a folder that holds both — pass ``layout=`` or point at one of them.

1. **BlastsOnline** (the published archive; ``<root>`` or ``<root>/BlastsOnline``)::

       Images/<n>.BMP                 grey microscope images (Hoffman modulation contrast)
       GT_ICM/<n> ICM_Mask.bmp        binary masks, one per structure;
       GT_TE/<n> TE_Mask.bmp          file and folder names are matched
       GT_ZP/<n> ZP_Mask.bmp          case-insensitively (the archive mixes cases)

   The blastocoel has no mask of its own: it is the filled zona (the ZP ring with its
   hole filled) minus ZP, TE and ICM; when the ZP ring is not closed its convex hull is
   used instead. Where masks overlap, ICM wins over TE, TE over ZP.

2. **Grey-coded** (one mask per image, as several derived releases ship it). The layout
   the kit reads and writes (``<root>`` or ``<root>/blastocyst_gray``)::

       images/<n>.<png|bmp|jpg|tif>   the image
       masks/<n>.png                  same name (case-insensitive), 8-bit grey codes:
                                      0 background, 64 or 105 ZP, 128 TE,
                                      192 or 226 blastocoel, 255 ICM

   Any other grey value is a :class:`DataError` naming the file and the values (a resized
   or JPEG-compressed mask would have them). 16-bit and RGB(A) masks are converted by the
   policy of :func:`~medseg_kit.data.base.read_mask`.

Images are grey; they are loaded as 3 identical channels (``channels=3``, the default, so
one model fits every dataset of the kit) or as one (``channels=1``).

:func:`synthesize_blastocyst` writes look-alike data in either layout: a grey Hoffman-
contrast field with a zona pellucida ring, a beaded trophectoderm, an inner cell mass and
a fluid blastocoel, each with its own tone and texture.
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from scipy.ndimage import binary_fill_holes
from skimage.filters import gaussian
from skimage.morphology import convex_hull_image
from tqdm.auto import tqdm

from ._synth import polar_distance, smooth_noise, smoothstep, worley
from .base import (
    EMPTY,
    LAYOUT,
    MASK_VALUES,
    MISSING_MASK,
    DataError,
    Item,
    Scan,
    SegData,
    decode_items,
    is_junk,
    read_binary_mask,
    read_image,
    read_mask,
    register_dataset,
    spread,
)

CLASS_NAMES = ("background", "zona pellucida", "trophectoderm", "blastocoel",
               "inner cell mass")
BACKGROUND, ZP, TE, BLASTOCOEL, ICM = range(5)
# Grey codes of the single-mask layout -> class id; WRITE_CODES are what the kit writes.
GREY_CODES = {0: BACKGROUND, 64: ZP, 105: ZP, 128: TE, 192: BLASTOCOEL, 226: BLASTOCOEL,
              255: ICM}
WRITE_CODES = {BACKGROUND: 0, ZP: 64, TE: 128, BLASTOCOEL: 192, ICM: 255}
# BlastsOnline mask folders and file-name suffixes, in paint order (later wins).
GT_PARTS = (("GT_ZP", " ZP_Mask.bmp", ZP), ("GT_TE", " TE_Mask.bmp", TE),
            ("GT_ICM", " ICM_Mask.bmp", ICM))
GRAY_DIR = "blastocyst_gray"
LAYOUTS = ("auto", "blastsonline", "gray")
_LAYOUT_NAMES = {"blastsonline": "BlastsOnline", "gray": "grey-coded"}
_IMAGE_EXTS = {".bmp", ".png", ".jpg", ".jpeg", ".tif", ".tiff"}
_MASK_EXTS = {".png", ".bmp", ".tif", ".tiff"}


# ------------------------------------------------------------------- layouts
def _ci_children(folder: Path) -> dict[str, Path]:
    """Children of ``folder`` by lower-cased name (junk skipped)."""
    if not folder.is_dir():
        return {}
    return {p.name.lower(): p for p in sorted(folder.iterdir()) if not is_junk(p)}


def find_layouts(root: Path) -> list[tuple[str, Path]]:
    """Every ``(layout, folder)`` under ``root``: ``root`` itself and its sub-folders
    (one level down, ``blastocyst_gray`` included), BlastsOnline ones first."""
    root = Path(root)
    cands = [root, *(p for p in _ci_children(root).values() if p.is_dir())]
    found = []
    for c in cands:
        kids = _ci_children(c)
        if all(k in kids for k in ("images", "gt_icm", "gt_te", "gt_zp")):
            found.append(("blastsonline", c))
    for c in cands:
        kids = _ci_children(c)
        if "images" in kids and "masks" in kids:
            found.append(("gray", c))
    return found


def find_layout(root: Path, layout: str = "auto") -> tuple[str, Path]:
    """``("blastsonline" | "gray", folder)`` for the data under ``root``.

    ``layout="auto"`` takes the one layout found; when ``root`` holds more than one (e.g.
    a BlastsOnline folder next to a ``blastocyst_gray`` one) it refuses and names them all,
    so that the data used is never a silent guess. ``layout="blastsonline"`` or ``"gray"``
    picks that kind (it must then be found once).
    """
    root = Path(root)
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    found = [(k, f) for k, f in find_layouts(root) if layout in ("auto", k)]
    if len(found) == 1:
        return found[0]
    if found:
        where = " and ".join(f"the {_LAYOUT_NAMES[k]} layout in {f}" for k, f in found)
        folders = list(dict.fromkeys(str(f) for _, f in found if f != root))
        kinds = list(dict.fromkeys(k for k, _ in found))
        how = []
        if folders:
            how.append(f"point the root (--root, --data-root) at {' or '.join(folders)}")
        if len(kinds) > 1:
            flags = " or ".join(f"--layout {k}" for k in kinds)
            how.append(f"choose the layout (data check: {flags}; layout= in load_dataset)")
        raise DataError(f"blastocyst data under {root} is ambiguous: found {where}; use one: "
                        f"{', or '.join(how)}", root, LAYOUT)
    wanted = {"blastsonline": f"the BlastsOnline layout ({root}/Images/<n>.BMP with "
                              f"GT_ICM/, GT_TE/, GT_ZP/ masks)",
              "gray": f"the grey-coded layout ({root}/{GRAY_DIR}/images/ and masks/)"}
    expected = " or ".join(v for k, v in wanted.items() if layout in ("auto", k))
    raise DataError(
        f"no blastocyst data under {root}: expected {expected} (make synthetic data with "
        f"`medseg-kit data synth --dataset blastocyst --out {root}`)", root, EMPTY)


def scan_blastocyst(root: Path, layout: str = "auto", **_) -> Scan:
    """List every image with its mask file(s), reading no pixels."""
    kind, base = find_layout(Path(root), layout)
    kids = _ci_children(base)
    scan = Scan(base, synthetic=(base / "SYNTHETIC").is_file()
                or (Path(root) / "SYNTHETIC").is_file())
    images = sorted((p for p in _ci_children(kids["images"]).values()
                     if p.suffix.lower() in _IMAGE_EXTS), key=lambda p: p.name.lower())
    if not images:
        scan.problems.append(DataError(f"{kids['images']} holds no images", kids["images"],
                                       EMPTY))
        return scan
    used: set[Path] = set()
    if kind == "blastsonline":
        gt = {d: _ci_children(kids[d.lower()]) for d, _, _ in GT_PARTS}
        for img in images:
            paths = []
            for d, suffix, _ in GT_PARTS:
                p = gt[d].get((img.stem + suffix).lower())
                if p is None:
                    expected = kids[d.lower()] / f"{img.stem}{suffix}"
                    scan.problems.append(DataError(
                        f"image {img} has no {d[3:]} mask; expected {expected} (any case)",
                        expected, MISSING_MASK))
                paths.append(p)
            if all(p is not None for p in paths):
                scan.items.append(Item(img.stem, img, tuple(paths), {"layout": kind}))
                used.update(paths)
        scan.extra = [p for d in gt.values() for p in d.values() if p not in used]
    else:
        masks = {}
        for p in _ci_children(kids["masks"]).values():
            if p.suffix.lower() in _MASK_EXTS:
                masks.setdefault(p.stem.lower(), p)
        for img in images:
            m = masks.get(img.stem.lower())
            if m is None:
                expected = kids["masks"] / f"{img.stem}.png"
                scan.problems.append(DataError(f"image {img} has no mask; expected {expected}",
                                               expected, MISSING_MASK))
                continue
            scan.items.append(Item(img.stem, img, (m,), {"layout": kind}))
            used.add(m)
        scan.extra = [p for p in masks.values() if p not in used]
    return scan


# ------------------------------------------------------------------- decoding
def compose_blastsonline(zp: np.ndarray, te: np.ndarray, icm: np.ndarray) -> np.ndarray:
    """Class ids from the three binary BlastsOnline masks (blastocoel derived)."""
    zp, te, icm = zp > 0, te > 0, icm > 0
    filled = binary_fill_holes(zp)
    if zp.any() and not (filled & ~zp).any():  # ring not closed: use its convex hull
        filled = convex_hull_image(zp)
    out = np.zeros(zp.shape, np.uint8)
    out[filled & ~zp & ~te & ~icm] = BLASTOCOEL
    out[zp] = ZP
    out[te] = TE
    out[icm] = ICM
    return out


def decode_grey_codes(mask: np.ndarray, path: Path) -> np.ndarray:
    """Class ids from a grey-coded mask; DataError naming the file on unknown values."""
    values = np.unique(mask)
    unknown = [int(v) for v in values if int(v) not in GREY_CODES]
    if unknown:
        raise DataError(f"mask {path} has grey value(s) {unknown[:10]} that are not class "
                        f"codes; expected only {sorted(GREY_CODES)} (0 background, 64/105 "
                        f"ZP, 128 TE, 192/226 blastocoel, 255 ICM)", path, MASK_VALUES)
    lut = np.zeros(256, np.uint8)
    for code, cls in GREY_CODES.items():
        lut[code] = cls
    return lut[mask]


def decode_blastocyst(item: Item, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Full-size image (``channels`` channels) and its class-id mask."""
    img = read_image(item.image, channels=channels)
    shape = img.shape[:2]
    if item.meta.get("layout") == "gray":
        return img, decode_grey_codes(read_mask(item.masks[0], shape, item.image),
                                      item.masks[0])
    zp, te, icm = (read_binary_mask(p, shape, item.image) for p in item.masks)
    return img, compose_blastsonline(zp, te, icm)


def load_blastocyst(root: Path, size: int = 128, progress: bool = True,
                    layout: str = "auto", channels: int = 3,
                    limit: int | None = None) -> SegData:
    """Read blastocyst images and five-class masks from either layout, resized to ``size``.

    Args:
        root: the folder holding the data (see the module docstring for the layouts).
        size: side of the square output.
        progress: show a progress bar.
        layout: ``auto``, ``blastsonline`` or ``gray``.
        channels: 3 (grey repeated, the default) or 1.
        limit: keep that many samples, evenly spread over the sorted list.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3; got {channels}")
    scan = scan_blastocyst(Path(root), layout)
    scan.raise_problems("blastocyst")
    images, masks, meta = decode_items("blastocyst", spread(scan.items, limit),
                                       lambda it: decode_blastocyst(it, channels), size,
                                       progress)
    return SegData("blastocyst", images, masks, CLASS_NAMES, meta, scan.synthetic)


# ------------------------------------------------------------------ synthetic
def synth_blastocyst_image(rng: np.random.Generator, h: int, w: int
                           ) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]:
    """One grey Hoffman-contrast blastocyst, its class-id mask (ids of CLASS_NAMES) and the
    three binary structure masks (ZP, TE, ICM; they may overlap) it was composed from.

    The structures are drawn as a height map (ZP a smooth ring, TE a ring of beads, ICM a
    heap of cells, the blastocoel flat fluid) plus a tone per class; the Hoffman look is
    the height map's slope along one light direction added to the tones.
    """
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    cy, cx = h / 2 + rng.uniform(-0.05, 0.05) * h, w / 2 + rng.uniform(-0.05, 0.05) * w
    big = rng.uniform(0.36, 0.44) * min(h, w)
    coeffs, phases = rng.uniform(0, 0.025, 3), rng.uniform(0, 2 * np.pi, 3)
    d, theta = polar_distance(h, w, cy, cx, big, rng.uniform(0, np.pi),
                              rng.uniform(0.92, 1.08), coeffs, phases)
    rho = d * big  # pixels from the centre, following the embryo's outline
    t_zp = rng.uniform(0.06, 0.10) * big
    gap = rng.uniform(0, 0.09) * big if rng.random() < 0.35 else 0.0  # perivitelline space
    t_te = rng.uniform(0.06, 0.10) * big
    n_cells = int(rng.integers(14, 26))
    u = (theta + np.pi) / (2 * np.pi) * n_cells + 0.4 * np.sin(3 * theta)  # cell coordinate
    cell_amp = rng.uniform(0.2, 1.0, n_cells + 1)[np.floor(u).astype(int) % n_cells]
    beads = np.sin(np.pi * (u % 1.0)) ** 2 * cell_amp  # a nucleus bulging in each cell
    te_out = big - t_zp - gap
    te_in = te_out - t_te * (0.6 + 0.8 * beads)
    zp_m = (rho <= big) & (rho > big - t_zp)
    te_m = (rho <= te_out) & (rho > te_in)
    # ICM: a lumpy heap on the inner wall of the TE (sometimes out of focus: absent)
    icm_m = np.zeros((h, w), bool)
    if rng.random() < 0.9:
        phi = rng.uniform(0, 2 * np.pi)
        r_icm = rng.uniform(0.22, 0.34) * big
        dist = te_out - t_te - 0.45 * r_icm
        icy, icx = cy + dist * np.sin(phi), cx + dist * np.cos(phi)
        di, _ = polar_distance(h, w, icy, icx, r_icm, phi, rng.uniform(1.1, 1.5),
                               rng.uniform(0, 0.12, 4), rng.uniform(0, 2 * np.pi, 4))
        icm_m = (di < 1) & (rho <= te_out)
    # tones and textures per class
    cell = max(4.0, 0.06 * big)
    f1, f2 = worley(rng, h, w, cell, te_m | icm_m)
    grain = smooth_noise(rng, (h, w), 1.0)
    bg = rng.uniform(0.50, 0.60) + 0.05 * smooth_noise(rng, (h, w), 40)
    tone = bg + 0.015 * smooth_noise(rng, (h, w), 2)
    inner = rho <= big - t_zp
    tone = np.where(inner, bg - rng.uniform(0.02, 0.06) + 0.01 * grain, tone)  # fluid
    zp_tone = bg + rng.uniform(0.05, 0.10) + 0.02 * np.cos(rho / rng.uniform(1.5, 2.5))
    tone = np.where(zp_m, zp_tone, tone)
    te_tone = bg - 0.09 - 0.05 * (1 - smoothstep(0, 2.5, f2 - f1)) + 0.04 * grain
    tone = np.where(te_m, te_tone, tone)
    icm_tone = bg - rng.uniform(0.08, 0.14) + 0.06 * smoothstep(0.2, 1.0, f1 / cell) \
        - 0.06 * (1 - smoothstep(0, 1.5, f2 - f1)) + 0.02 * grain
    tone = np.where(icm_m, icm_tone, tone)
    # height map -> Hoffman relief (slope along the light direction)
    height = (0.9 * zp_m + 0.7 * te_m * (0.6 + 0.4 * beads) + 1.1 * icm_m
              * (1.2 - smoothstep(0, 1, f1 / cell)))
    height = gaussian(height.astype(float), sigma=max(1.0, 0.012 * big))
    a = rng.uniform(0, 2 * np.pi)
    gy, gx = np.gradient(height)
    relief = (np.cos(a) * gx + np.sin(a) * gy) * rng.uniform(2.2, 3.2)
    img = tone + relief
    # debris and halo outside, illumination gradient, sensor noise
    img = img + 0.03 * (smooth_noise(rng, (h, w), 3) > 0.7) * (rho > big + 4)
    img = img * (1 + 0.06 * ((xx - cx) * np.cos(a) + (yy - cy) * np.sin(a)) / max(h, w))
    img = img + rng.normal(0, 0.012, img.shape)
    img8 = np.clip(img * 255, 0, 255).astype(np.uint8)
    return img8, compose_blastsonline(zp_m, te_m, icm_m), (zp_m, te_m, icm_m)


def _case_variant(rng: np.random.Generator, suffix: str) -> str:
    """The archive mixes ``ICM_Mask.bmp``, ``ICM_MASK.BMP`` ...; so do we."""
    r = rng.random()
    return suffix if r < 0.7 else suffix.upper() if r < 0.9 else suffix.lower()


def synthesize_blastocyst(out: Path, n: int = 200, seed: int = 0, layout: str = "blastsonline",
                          image_size: tuple[int, int] = (288, 352),
                          progress: bool = True) -> Path:
    """Write ``n`` synthetic blastocysts in the BlastsOnline layout (or ``layout="gray"``).

    Deterministic from ``seed``. Image sides vary in ``image_size`` (smaller than the
    real ones, to stay quick). BlastsOnline: ``Images/Blast_PCRM_<id> D<5|6>.BMP`` and
    the three binary masks with the archive's mixed name cases; grey-coded:
    ``blastocyst_gray/images/<id>.png`` and ``masks/<id>.png`` (codes 64 or 105 for ZP and
    192 or 226 for the blastocoel, both spellings used). A ``SYNTHETIC`` marker says what
    the folder holds. Returns ``out`` (pass it to :func:`load_blastocyst`).
    """
    if layout not in ("blastsonline", "gray"):
        raise ValueError(f"layout must be 'blastsonline' or 'gray'; got {layout!r}")
    out = Path(out)
    base = out if layout == "blastsonline" else out / GRAY_DIR
    dirs = (["Images", "GT_ICM", "GT_TE", "GT_ZP"] if layout == "blastsonline"
            else ["images", "masks"])
    for d in dirs:
        (base / d).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = rng.choice(np.arange(1_000_000, 9_999_999), size=n, replace=False)
    for i in tqdm(range(n), desc="synthesizing blastocyst", disable=not progress,
                  leave=False):
        h = int(rng.integers(image_size[0], image_size[1] + 1))
        w = int(np.clip(h + rng.integers(-16, 17), image_size[0], image_size[1]))
        img, mask, parts = synth_blastocyst_image(rng, h, w)
        if layout == "blastsonline":
            stem = f"Blast_PCRM_{ids[i]} D{5 + int(rng.random() < 0.3)}"
            iio.imwrite(base / "Images" / f"{stem}.BMP", img, extension=".bmp")
            for (d, suffix, _), m in zip(GT_PARTS, parts):
                name = stem + _case_variant(rng, suffix)
                iio.imwrite(base / d / name, m.astype(np.uint8) * 255, extension=".bmp")
        else:
            codes = dict(WRITE_CODES)
            codes[ZP] = 64 if rng.random() < 0.5 else 105
            codes[BLASTOCOEL] = 192 if rng.random() < 0.5 else 226
            lut = np.array([codes[c] for c in range(len(CLASS_NAMES))], np.uint8)
            iio.imwrite(base / "images" / f"blast_{ids[i]}.png", img)
            iio.imwrite(base / "masks" / f"blast_{ids[i]}.png", lut[mask])
    (out / "SYNTHETIC").write_text(f"synthetic blastocyst look-alike ({layout} layout): "
                                   f"n={n} seed={seed}\n")
    return out


register_dataset("blastocyst", load_blastocyst, synthesize_blastocyst, scan=scan_blastocyst,
                 decode=decode_blastocyst, class_names=CLASS_NAMES)
