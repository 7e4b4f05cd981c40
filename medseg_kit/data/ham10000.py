"""HAM10000 (Tschandl et al., Sci. Data 2018) with the lesion masks of Tschandl et al. 2020.

Real layout, as the Harvard Dataverse archives (doi:10.7910/DVN/DBW86T) unpack — the
images may sit in ``HAM10000_images_part_1/`` and ``HAM10000_images_part_2/`` or in one
merged folder; they are found recursively::

    <root>/**/ISIC_0024306.jpg ... ISIC_0034320.jpg        10,015 RGB JPEGs, 600x450
    <root>/HAM10000_segmentations_lesion_tschandl/ISIC_<id>_segmentation.png   0/255 masks
    <root>/HAM10000_metadata.csv   (or .tab, or no extension; comma- or tab-separated)
        lesion_id,image_id,dx,dx_type,age,sex,localization[,dataset]
    <root>/__MACOSX/...            macOS junk in the mask zip: ignored, as are ``._*`` files

The metadata file drives the sample list: every row needs its image and its mask; images
that no row names (e.g. the ISIC 2018 test images unpacked alongside) are ignored and
listed by the checker. An image found twice (a merged folder next to the part folders)
is used once when both copies have the same size, and is a problem otherwise.

Several images show the same lesion, so a train/test split must be by ``lesion_id``:
:func:`lesion_split` (or ``train_test_split(len(d), groups=d.groups())``; the loader
sets ``group_key="lesion_id"``, which the training loop's split uses too).

:func:`synthesize_ham10000` writes look-alike data in the same layout (skin-toned
background, an irregular pigmented lesion with a soft border, hairs that are not in the
mask, dermoscope vignetting, a metadata CSV with the real diagnosis mix and several images
per lesion), so this loader runs in tests, CI and Binder.
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage.filters import gaussian
from tqdm.auto import tqdm

from ._synth import draw_curves, polar_distance, smooth_noise, smoothstep, worley
from .base import (
    DUPLICATE,
    EMPTY,
    METADATA,
    MISSING_IMAGE,
    MISSING_MASK,
    DataError,
    Item,
    Scan,
    SegData,
    decode_items,
    read_binary_mask,
    read_image,
    register_dataset,
    spread,
    train_test_split,
)

CLASS_NAMES = ("background", "lesion")
MASK_DIR = "HAM10000_segmentations_lesion_tschandl"
METADATA_FILE = "HAM10000_metadata.csv"
REQUIRED_COLUMNS = ("lesion_id", "image_id", "dx")
META_COLUMNS = ("lesion_id", "dx", "dx_type", "age", "sex", "localization", "dataset")
DX_NAMES = {
    "nv": "melanocytic nevi",
    "mel": "melanoma",
    "bkl": "benign keratosis-like lesions",
    "bcc": "basal cell carcinoma",
    "akiec": "actinic keratoses / intraepithelial carcinoma",
    "vasc": "vascular lesions",
    "df": "dermatofibroma",
}
# Share of images per diagnosis in the real metadata (6705/1113/1099/514/327/142/115).
DX_MIX = {"nv": 0.6695, "mel": 0.1111, "bkl": 0.1097, "bcc": 0.0513, "akiec": 0.0327,
          "vasc": 0.0142, "df": 0.0115}
_IMAGE_RE = re.compile(r"^(ISIC_\d+)\.jpe?g$", re.IGNORECASE)
_MASK_RE = re.compile(r"^(ISIC_\d+)_segmentation\.png$", re.IGNORECASE)
_META_RE = re.compile(r"^HAM10000_metadata(\.csv|\.tab|\.txt)?$", re.IGNORECASE)
_SKIP_DIRS = {"__MACOSX", ".medseg_cache"}


# ------------------------------------------------------------------- reading
def _walk(root: Path) -> tuple[dict, dict, list[Path]]:
    """One pass over ``root``: images and masks by image id, and metadata files."""
    images: dict[str, list[str]] = {}
    masks: dict[str, list[str]] = {}
    metas: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for f in sorted(filenames):
            if f.startswith("._"):
                continue
            if (m := _IMAGE_RE.match(f)) is not None:  # paths stay strings: 10k+ files
                images.setdefault(m.group(1).upper(), []).append(os.path.join(dirpath, f))
            elif (m := _MASK_RE.match(f)) is not None:
                masks.setdefault(m.group(1).upper(), []).append(os.path.join(dirpath, f))
            elif _META_RE.match(f):
                metas.append(Path(dirpath) / f)
    return images, masks, metas


def read_metadata(path: Path) -> list[dict]:
    """Rows of a HAM10000 metadata file (comma- or tab-separated, quoted or not).

    ``age`` becomes a float (None when empty or ``NA``); other fields stay strings.
    Raises DataError naming the file when a required column is missing.
    """
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read metadata {path}: {e}", path, METADATA) from e
    first = text.split("\n", 1)[0]
    delim = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.DictReader(text.splitlines(), delimiter=delim)
    cols = [c.strip() for c in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise DataError(f"metadata {path} lacks column(s) {', '.join(missing)}; expected a "
                        f"header {','.join(REQUIRED_COLUMNS + META_COLUMNS[2:])}", path,
                        METADATA)
    rows = []
    for r in reader:
        r = {k.strip(): (v or "").strip() for k, v in r.items() if k is not None}
        age = r.get("age", "")
        try:
            r["age"] = float(age) if age not in ("", "NA", "nan") else None
        except ValueError:
            r["age"] = None
        rows.append(r)
    return rows


def scan_ham10000(root: Path, **_) -> Scan:
    """Find every metadata row's image and mask under ``root``, reading no pixels."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"no HAM10000 data: {root} is not a folder", root, EMPTY)
    images, masks, metas = _walk(root)
    scan = Scan(root, synthetic=(root / "SYNTHETIC").is_file())
    if not metas:
        scan.problems.append(DataError(
            f"no HAM10000 metadata under {root}: expected {root / METADATA_FILE} (columns "
            f"{','.join(REQUIRED_COLUMNS + META_COLUMNS[2:])}) next to the images and "
            f"{root / MASK_DIR}/ (make synthetic data with `medseg-kit data synth --dataset "
            f"ham10000 --out {root}`)", root / METADATA_FILE,
            EMPTY if not images else METADATA))
        return scan
    meta_file = min(metas, key=lambda p: (len(p.relative_to(root).parts), str(p)))
    scan.side_files.append(meta_file)
    try:
        rows = read_metadata(meta_file)
    except DataError as e:
        scan.problems.append(e)
        return scan
    if not rows:
        scan.problems.append(DataError(f"metadata {meta_file} has no rows", meta_file, EMPTY))
    for r in rows:
        if not r["image_id"]:
            cells = ", ".join(f"{k}={v!r}" for k, v in r.items() if v not in ("", None))
            scan.problems.append(DataError(f"metadata {meta_file} has a row with no image_id "
                                           f"({cells[:120] or 'all cells empty'})",
                                           meta_file, METADATA))
    seen: set[str] = set()
    for r in sorted((r for r in rows if r["image_id"]), key=lambda r: r["image_id"]):
        iid = r["image_id"].upper()
        if iid in seen:
            scan.problems.append(DataError(f"metadata {meta_file} lists {iid} twice",
                                           meta_file, METADATA))
            continue
        seen.add(iid)
        img = _pick(iid, images.get(iid, []), "image", scan)
        msk = _pick(iid, masks.get(iid, []), "mask", scan)
        if img is None and iid not in images:
            scan.problems.append(DataError(
                f"{iid} is in {meta_file.name} but no {iid}.jpg was found under {root}",
                root / f"{iid}.jpg", MISSING_IMAGE))
        if msk is None and iid not in masks:
            expected = root / MASK_DIR / f"{iid}_segmentation.png"
            scan.problems.append(DataError(f"image {iid} has no mask; expected {expected}",
                                           expected, MISSING_MASK))
        if img is not None and msk is not None:
            meta = {k: r.get(k) for k in META_COLUMNS if k in r}
            scan.items.append(Item(iid, img, (msk,), meta))
    scan.extra = sorted(Path(p) for k, ps in (*images.items(), *masks.items())
                        if k not in seen for p in ps)
    return scan


def _pick(iid: str, paths: list[str], what: str, scan: Scan) -> Path | None:
    """The one file for ``iid``; identical-size duplicates are fine, others a problem."""
    if len(paths) <= 1:
        return Path(paths[0]) if paths else None
    sizes = {os.stat(p).st_size for p in paths}
    if len(sizes) == 1:
        return Path(paths[0])
    scan.problems.append(DataError(
        f"{what} {iid} found {len(paths)} times with different contents: "
        f"{', '.join(paths)}; keep one", paths[0], DUPLICATE))
    return None


def decode_ham10000(item: Item) -> tuple[np.ndarray, np.ndarray]:
    """Full-size RGB image and its 0/1 lesion mask."""
    img = read_image(item.image)
    return img, read_binary_mask(item.masks[0], img.shape[:2], item.image)


def load_ham10000(root: Path, size: int = 128, progress: bool = True,
                  limit: int | None = None) -> SegData:
    """Read HAM10000 from its official layout and resize every pair to ``size``.

    Metadata per sample: ``id`` (the image id), ``path``, original ``height``/``width`` and
    the CSV fields ``lesion_id``, ``dx``, ``dx_type``, ``age``, ``sex``, ``localization``
    (and ``dataset`` when present). ``limit`` keeps that many samples, evenly spread over
    the list sorted by image id.
    """
    scan = scan_ham10000(Path(root))
    scan.raise_problems("ham10000")
    images, masks, meta = decode_items("ham10000", spread(scan.items, limit),
                                       decode_ham10000, size, progress)
    return SegData("ham10000", images, masks, CLASS_NAMES, meta, scan.synthetic,
                   group_key="lesion_id")


def lesion_split(data: SegData, test_fraction: float = 0.2, seed: int = 0
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Train/test indices with every lesion on one side only (grouped by ``lesion_id``)."""
    return train_test_split(len(data), test_fraction, seed, groups=data.groups())


# ------------------------------------------------------------------ synthetic
# Reference colours (RGB) of each diagnosis: (main, second, third) pigment.
_DX_COLOURS = {
    "nv": ((140, 90, 62), (105, 66, 46), (165, 115, 85)),
    "mel": ((72, 46, 38), (128, 82, 60), (118, 116, 138)),
    "bkl": ((168, 122, 88), (135, 95, 68), (190, 150, 115)),
    "bcc": ((205, 150, 150), (180, 100, 105), (225, 190, 185)),
    "akiec": ((195, 118, 104), (170, 90, 85), (230, 205, 190)),
    "vasc": ((150, 40, 62), (95, 30, 60), (185, 80, 95)),
    "df": ((150, 100, 72), (125, 84, 62), (232, 212, 198)),
}
_LOCALIZATIONS = {"back": .22, "lower extremity": .21, "trunk": .14, "upper extremity": .11,
                  "abdomen": .10, "face": .07, "chest": .04, "foot": .03, "unknown": .02,
                  "neck": .02, "scalp": .013, "hand": .009, "ear": .006, "genital": .005,
                  "acral": .001}
_AGE = {"nv": (42, 15), "mel": (61, 15), "bkl": (60, 14), "bcc": (66, 12), "akiec": (67, 11),
        "vasc": (50, 20), "df": (52, 14)}
_DX_TYPE = {"nv": {"follow_up": .55, "histo": .39, "consensus": .04, "confocal": .02},
            "mel": {"histo": 1.0}, "bkl": {"histo": .6, "consensus": .33, "confocal": .07},
            "bcc": {"histo": 1.0}, "akiec": {"histo": 1.0},
            "vasc": {"consensus": .55, "histo": .45}, "df": {"consensus": .5, "histo": .5}}
_SOURCE = {"nv": {"vidir_molemax": .55, "vidir_modern": .28, "rosendahl": .13,
                  "vienna_dias": .04},
           "other": {"vidir_modern": .45, "rosendahl": .45, "vienna_dias": .10}}
_IMAGES_PER_LESION = (0.74, 0.19, 0.05, 0.015, 0.005)


def _choice(rng: np.random.Generator, table: dict) -> str:
    keys = list(table)
    p = np.array([table[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def draw_lesion_params(rng: np.random.Generator, dx: str) -> dict:
    """Everything that stays the same across the images of one lesion."""
    irregular = {"mel": 0.10, "bcc": 0.06, "akiec": 0.06, "bkl": 0.05}.get(dx, 0.03)
    red = rng.uniform(200, 238)  # light skin types, as in the real (Austrian/Australian) data
    skin = np.array([red, red * rng.uniform(0.72, 0.82), red * rng.uniform(0.62, 0.72)])
    return {
        "dx": dx,
        "skin": skin,
        "radius": rng.uniform(0.2, 0.36) if dx != "df" else rng.uniform(0.13, 0.22),
        "aspect": rng.uniform(0.8, 1.25),
        "coeffs": rng.uniform(0, irregular, 6) * np.array([2, 1.5, 1.2, 1, .8, .6]),
        "phases": rng.uniform(0, 2 * np.pi, 6),
        "colours": np.array(_DX_COLOURS[dx], float) * rng.uniform(0.85, 1.12),
        "network": dx in ("nv", "mel", "df") and rng.random() < 0.7,
        "dots": dx in ("nv", "mel") and rng.random() < 0.5,
        "vessels": dx in ("bcc", "akiec") and rng.random() < 0.8,
        "lacunae": dx == "vasc",
        "cell": rng.uniform(5, 9),
        "soft": rng.uniform(0.08, 0.22) if dx != "mel" else rng.uniform(0.04, 0.12),
    }


def synth_skin_image(rng: np.random.Generator, h: int, w: int, lesion: dict
                     ) -> tuple[np.ndarray, np.ndarray]:
    """One dermoscopic look-alike of ``lesion`` and its 0/255 lesion mask."""
    dx = lesion["dx"]
    yy, xx = np.mgrid[0:h, 0:w]
    # skin: mottled tone, fine grain, a faint criss-cross of skin lines
    skin = lesion["skin"] * rng.uniform(0.97, 1.03, 3)
    tone = 1 + 0.05 * smooth_noise(rng, (h, w), 25) + 0.02 * smooth_noise(rng, (h, w), 1.2)
    warp = 6 * smooth_noise(rng, (h, w), 12)
    lines = np.zeros((h, w))
    for a in rng.uniform(0, np.pi, 2):
        c = np.cos((xx * np.cos(a) + yy * np.sin(a)) / rng.uniform(2.5, 4) + warp) ** 2
        lines += (c * c) ** 2  # cos^8: thin furrows
    img = skin[None, None, :] * (tone - 0.012 * lines)[..., None]
    # the lesion: a wavy blob with a soft border, placed near the centre
    r = lesion["radius"] * min(h, w) * rng.uniform(0.9, 1.1)
    cy, cx = h / 2 + rng.uniform(-0.12, 0.12) * h, w / 2 + rng.uniform(-0.12, 0.12) * w
    d, theta = polar_distance(h, w, cy, cx, r, rng.uniform(0, 2 * np.pi), lesion["aspect"],
                              lesion["coeffs"], lesion["phases"])
    d = d * (1 + 0.04 * smooth_noise(rng, (h, w), 2.5))
    inside = d < 1.0
    soft = lesion["soft"] * (1 + 0.6 * np.sin(3 * theta + rng.uniform(0, 6)))
    alpha = 1 - smoothstep(1 - soft, 1 + soft, d)
    c1, c2, c3 = lesion["colours"]
    w2 = smoothstep(-0.3, 0.6, smooth_noise(rng, (h, w), r / 4))[..., None]
    w3 = 0.8 * smoothstep(0.2, 0.9, smooth_noise(rng, (h, w), r / 6))[..., None]
    body = (c1 * (1 - w2) + c2 * w2) * (1 - w3) + c3 * w3
    centre = np.clip(1 - d, 0, 1)[..., None]
    if dx == "df":  # pale scar-like centre
        scar = 0.8 * smoothstep(0.35, 0.8, centre)
        body = body * (1 - scar) + c3 * scar
    elif dx in ("nv", "mel"):  # darker towards the centre, lighter rim
        body = body * (1 - 0.3 * centre + 0.12 * (1 - centre))
    body = body * (1 + 0.06 * smooth_noise(rng, (h, w), 1.5))[..., None]
    if lesion["network"] or lesion["dots"] or lesion["lacunae"]:
        f1, f2 = worley(rng, h, w, lesion["cell"] * min(h, w) / 225, alpha > 0.01)
        fade = (1 - smoothstep(0.55, 1.0, d))[..., None]
        if lesion["network"]:  # reticular pigment network: a honeycomb of brown lines
            net = 1 - smoothstep(0.0, 2.2, f2 - f1)
            body = body * (1 - 0.25 * net[..., None] * fade)
        if lesion["dots"]:  # dots and globules at some cell centres
            dots = (1 - smoothstep(1.0, 2.4, f1)) * (smooth_noise(rng, (h, w), 4) > 0.1)
            body = body * (1 - 0.35 * dots[..., None] * fade)
        if lesion["lacunae"]:  # red-purple lacunae with pale septa
            sept = 1 - smoothstep(0.0, 1.2, f2 - f1)
            body = body * (1 - 0.3 * (f1 / f1.max())[..., None]) + 60 * sept[..., None] * fade
    if lesion["vessels"]:  # branching red vessels
        ves = draw_curves(rng, h, w, int(rng.integers(4, 9)), (0.08, 0.25), 2.0, 8)
        ves = gaussian(ves, 0.5) * (d < 1.05)
        body = body * (1 - 0.7 * ves[..., None]) + np.array([165, 25, 40]) * (
            0.7 * ves[..., None])
    img = img * (1 - alpha[..., None]) + body * alpha[..., None]
    # hairs: dark curves over skin and lesion alike, not part of the mask
    if rng.random() < 0.55:
        count = int(rng.integers(1, 14))
        hair = draw_curves(rng, h, w, count, (0.4, 1.2), 0.8, 14)
        hair = np.clip(gaussian(hair, 0.5) * 1.8, 0, 1)[..., None]
        hair_rgb = np.array([45, 30, 25]) * rng.uniform(0.6, 1.4)
        img = img * (1 - 0.85 * hair) + hair_rgb * 0.85 * hair
    # illumination: vignetting, sometimes the round black field of a dermoscope
    img = img * rng.uniform(0.96, 1.04)
    rr = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    img = img * np.clip(1 - rng.uniform(0.1, 0.3) * rr ** 2, 0, 1)[..., None]
    if rng.random() < 0.3:
        field = 1 - smoothstep(rng.uniform(1.0, 1.15), 1.3, rr * rng.uniform(0.95, 1.1))
        img = img * field[..., None]
    img = img + rng.normal(0, 2.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), inside.astype(np.uint8) * 255


def synth_ham_metadata(rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` metadata rows: realistic diagnosis mix, 1-5 images per lesion."""
    rows: list[dict] = []
    lesion_ids = rng.choice(np.arange(1, 7500), size=n, replace=False)
    image_ids = np.sort(rng.choice(np.arange(24306, 34321), size=n, replace=False))
    order = rng.permutation(n)  # image ids are not grouped by lesion in the real data
    k = 0
    while len(rows) < n:
        dx = _choice(rng, DX_MIX)
        count = 1 + int(rng.choice(len(_IMAGES_PER_LESION), p=_IMAGES_PER_LESION))
        mu, sd = _AGE[dx]
        base = {"lesion_id": f"HAM_{lesion_ids[k]:07d}", "dx": dx,
                "dx_type": _choice(rng, _DX_TYPE[dx]),
                "age": float(np.clip(5 * round(rng.normal(mu, sd) / 5), 0, 85)),
                "sex": _choice(rng, {"male": .54, "female": .45, "unknown": .01}),
                "localization": _choice(rng, _LOCALIZATIONS),
                "dataset": _choice(rng, _SOURCE["nv" if dx == "nv" else "other"])}
        for _ in range(min(count, n - len(rows))):
            rows.append({**base, "image_id": f"ISIC_{image_ids[order[len(rows)]]:07d}"})
        k += 1
    return rows


# AppleDouble stubs like the ones macOS leaves in the mask zip (magic 0x00051607).
_APPLEDOUBLE = bytes.fromhex("00051607000200004d6163204f53205820202020") + bytes(213)


def synthesize_ham10000(out: Path, n: int = 200, seed: int = 0,
                        image_size: tuple[int, int] = (225, 300),
                        progress: bool = True) -> Path:
    """Write ``n`` synthetic skin-lesion images in the real HAM10000 layout under ``out``.

    Deterministic from ``seed``. Images are ``image_size`` (height, width) — half the real
    600x450, to stay quick — split over ``HAM10000_images_part_1/`` and ``..._part_2/``;
    masks are 0/255 PNGs in ``HAM10000_segmentations_lesion_tschandl/``; the metadata CSV
    has the real columns, diagnosis mix and 1-5 images per lesion; a few ``__MACOSX/._*``
    stubs are written as the real mask zip has them. A ``SYNTHETIC`` marker says what the
    folder holds. Returns ``out`` (pass it to :func:`load_ham10000`).
    """
    out = Path(out)
    rng = np.random.default_rng(seed)
    rows = synth_ham_metadata(rng, n)
    h, w = image_size
    parts = [out / "HAM10000_images_part_1", out / "HAM10000_images_part_2"]
    for d in (*parts, out / MASK_DIR, out / "__MACOSX" / MASK_DIR):
        d.mkdir(parents=True, exist_ok=True)
    lesions: dict[str, dict] = {}
    for i, row in enumerate(tqdm(rows, desc="synthesizing ham10000", disable=not progress,
                                 leave=False)):
        lid = row["lesion_id"]
        if lid not in lesions:
            lesions[lid] = draw_lesion_params(rng, row["dx"])
        img, mask = synth_skin_image(rng, h, w, lesions[lid])
        iid = row["image_id"]
        iio.imwrite(parts[i * 2 // max(1, n)] / f"{iid}.jpg", img, quality=90)
        iio.imwrite(out / MASK_DIR / f"{iid}_segmentation.png", mask)
        if i % 10 == 0:
            (out / "__MACOSX" / MASK_DIR / f"._{iid}_segmentation.png").write_bytes(
                _APPLEDOUBLE)
    cols = ["lesion_id", "image_id", "dx", "dx_type", "age", "sex", "localization", "dataset"]
    with open(out / METADATA_FILE, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=cols)
        wr.writeheader()
        for row in sorted(rows, key=lambda r: (r["lesion_id"], r["image_id"])):
            wr.writerow({**row, "age": f"{row['age']:.1f}"})
    (out / "SYNTHETIC").write_text(f"synthetic HAM10000 look-alike: n={n} seed={seed}\n")
    return out


register_dataset("ham10000", load_ham10000, synthesize_ham10000, scan=scan_ham10000,
                 decode=decode_ham10000, class_names=CLASS_NAMES)
