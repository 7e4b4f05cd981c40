"""Kvasir-SEG on synthetic data in the real layout: JPEG mask noise, bounding boxes, masks
converted to PNG."""

import imageio.v3 as iio
import numpy as np
import pytest

from medseg_kit.data import DataError, load_dataset, synthesize
from medseg_kit.data.base import MISSING_MASK
from medseg_kit.data.check import check_dataset
from medseg_kit.data.kvasir import list_pairs, load_kvasir


@pytest.fixture(scope="module")
def kvasir_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("kv")
    synthesize("kvasir", root, n=5, seed=1, min_size=(48, 60), max_size=(64, 90),
               progress=False)
    return root


def test_jpeg_mask_noise_is_thresholded(kvasir_root):
    raw = iio.imread(sorted((kvasir_root / "Kvasir-SEG" / "masks").iterdir())[0])
    assert len(np.unique(raw)) > 2  # JPEG left grey values around 0 and 255
    d = load_kvasir(kvasir_root, size=32, progress=False)
    assert set(np.unique(d.masks)) == {0, 1} and len(d) == 5 and d.synthetic
    assert all(m["bboxes"] and {"xmin", "ymax"} <= set(m["bboxes"][0]) for m in d.meta)
    sizes = {(m["height"], m["width"]) for m in d.meta}
    assert len(sizes) > 1  # images of different sizes, like the real set


def test_missing_mask_lists_every_one(kvasir_root, tmp_path):
    import shutil

    dst = tmp_path / "k"
    shutil.copytree(kvasir_root, dst)
    masks = sorted((dst / "Kvasir-SEG" / "masks").iterdir())
    for m in masks[:2]:
        m.unlink()
    with pytest.raises(DataError, match="2 problems") as e:
        list_pairs(dst)
    assert e.value.kind == MISSING_MASK
    assert masks[0].name in str(e.value) and masks[1].name in str(e.value)


def test_empty(tmp_path):
    with pytest.raises(DataError, match="no Kvasir-SEG data"):
        load_dataset("kvasir", tmp_path)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst / "Kvasir-SEG" / "masks"


def test_png_masks_load_like_jpeg(kvasir_root, tmp_path):
    """Masks converted to PNG (8-bit grey, RGBA, 16-bit scaled or not, upper-case .PNG)
    are found, and binarised exactly as the JPEG masks they came from."""
    masks = _copy(kvasir_root, tmp_path / "k")
    for i, jpg in enumerate(sorted(masks.iterdir())):
        grey = iio.imread(jpg)
        converted = [grey, np.dstack([grey, grey, grey, np.full_like(grey, 255)]),
                     grey.astype(np.uint16) * 257, grey.astype(np.uint16), grey][i]
        png = jpg.with_suffix(".PNG" if i == 4 else ".png")
        iio.imwrite(png, converted, extension=".png")
        jpg.unlink()
    a = load_kvasir(kvasir_root, size=32, progress=False)
    b = load_dataset("kvasir", tmp_path / "k", size=32, progress=False, cache=False)
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.images, b.images)
    assert [m["id"] for m in a.meta] == [m["id"] for m in b.meta]
    assert a.meta[0]["bboxes"] == b.meta[0]["bboxes"]
    r = check_dataset("kvasir", tmp_path / "k")
    assert r.ok and r.counts["decoded"] == 5 and r.counts["extra_files"] == 0


def test_jpeg_mask_wins_over_png(kvasir_root, tmp_path):
    masks = _copy(kvasir_root, tmp_path / "k")
    jpg = sorted(masks.iterdir())[0]
    png = jpg.with_suffix(".png")
    iio.imwrite(png, np.zeros((3, 3), np.uint8))  # would be a size mismatch if used
    r = check_dataset("kvasir", tmp_path / "k")
    assert r.ok and r.extra == [str(png)]
    assert len(load_kvasir(tmp_path / "k", size=16, progress=False)) == 5


def test_mask_in_another_format_is_named(kvasir_root, tmp_path):
    masks = _copy(kvasir_root, tmp_path / "k")
    jpg = sorted(masks.iterdir())[1]
    bmp = jpg.with_suffix(".bmp")
    iio.imwrite(bmp, iio.imread(jpg), extension=".bmp")
    jpg.unlink()
    msg = f"found {bmp}; expected {jpg} (or {jpg.with_suffix('.png')})"
    with pytest.raises(DataError, match="no mask in a format the loader reads") as e:
        load_kvasir(tmp_path / "k", size=16, progress=False)
    assert msg in str(e.value) and e.value.kind == MISSING_MASK and e.value.path == str(bmp)
    r = check_dataset("kvasir", tmp_path / "k")
    assert not r.ok and [p.kind for p in r.problems] == [MISSING_MASK]
    assert msg in r.format() and r.counts["extra_files"] == 0  # named once, as the problem
    jpg.with_suffix(".png").write_bytes(b"")  # now a PNG is there: it is the one read
    with pytest.raises(DataError, match="empty file"):
        load_kvasir(tmp_path / "k", size=16, progress=False)


def test_damaged_bbox_file_is_named(kvasir_root, tmp_path):
    _copy(kvasir_root, tmp_path / "k")
    boxes = tmp_path / "k" / "Kvasir-SEG" / "kavsir_bboxes.json"
    boxes.write_text("[1, 2]")
    with pytest.raises(DataError, match="holds a JSON list; expected an object"):
        load_kvasir(tmp_path / "k", size=16, progress=False)
    boxes.write_text('{"x": 3, "y": {"bbox": "no"}}')  # odd entries: no boxes, no crash
    d = load_kvasir(tmp_path / "k", size=16, progress=False)
    assert all(m["bboxes"] == [] for m in d.meta)
