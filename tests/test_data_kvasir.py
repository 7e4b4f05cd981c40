"""Kvasir-SEG on synthetic data in the real layout: JPEG mask noise, bounding boxes."""

import imageio.v3 as iio
import numpy as np
import pytest

from medseg_kit.data import DataError, load_dataset, synthesize
from medseg_kit.data.base import MISSING_MASK
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
