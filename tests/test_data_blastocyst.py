"""Blastocyst: both layouts, case-varied names, grey codes, bad masks, ambiguous roots."""

import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from medseg_kit.data import DataError, load_dataset, synthesize
from medseg_kit.data.base import LAYOUT, MASK_VALUES, MISSING_MASK
from medseg_kit.data.blastocyst import (
    BLASTOCOEL,
    CLASS_NAMES,
    GREY_CODES,
    ICM,
    TE,
    ZP,
    compose_blastsonline,
    load_blastocyst,
    synth_blastocyst_image,
)

N = 6


@pytest.fixture(scope="module")
def blasts(tmp_path_factory):
    root = tmp_path_factory.mktemp("blast") / "BlastsOnline"
    synthesize("blastocyst", root, n=N, seed=2, image_size=(64, 72), progress=False)
    return root


@pytest.fixture(scope="module")
def gray(tmp_path_factory):
    root = tmp_path_factory.mktemp("gray")
    synthesize("blastocyst", root, n=N, seed=2, layout="gray", image_size=(64, 72),
               progress=False)
    return root


def test_blastsonline_layout(blasts):
    assert {p.name for p in blasts.iterdir()} >= {"Images", "GT_ICM", "GT_TE", "GT_ZP"}
    names = [p.name for p in (blasts / "GT_ICM").iterdir()]
    assert any(n.endswith(" ICM_Mask.bmp") for n in names)
    assert any(n.endswith((" ICM_MASK.BMP", " icm_mask.bmp")) for n in names), \
        "the synthetic archive mixes name cases like the real one"
    d = load_blastocyst(blasts, size=32, progress=False)
    assert len(d) == N and d.class_names == CLASS_NAMES and d.num_classes == 5
    assert d.images.shape == (N, 32, 32, 3) and d.model_classes == 5 and d.synthetic
    assert np.array_equal(d.images[..., 0], d.images[..., 2])  # grey, repeated
    assert set(np.unique(d.masks)) == set(range(5))
    one = load_blastocyst(blasts, size=32, progress=False, channels=1)
    assert one.images.shape == (N, 32, 32, 1) and np.array_equal(one.masks, d.masks)


def test_case_insensitive_names(blasts, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(blasts, dst)
    (dst / "GT_ICM").rename(dst / "gt_icm")
    (dst / "Images").rename(dst / "IMAGES")
    for p in (dst / "GT_TE").iterdir():
        p.rename(p.with_name(p.name.upper()))
    for p in (dst / "IMAGES").iterdir():
        p.rename(p.with_name(p.stem + ".bmp"))
    a = load_blastocyst(blasts, size=24, progress=False)
    b = load_blastocyst(dst, size=24, progress=False)
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.images, b.images)


def test_gray_layout(gray):
    d = load_dataset("blastocyst", gray, size=32, progress=False, cache=False)
    assert len(d) == N and set(np.unique(d.masks)) == set(range(5))
    assert d.meta[0]["layout"] == "gray"
    codes = set()
    for p in (gray / "blastocyst_gray" / "masks").iterdir():
        codes |= set(np.unique(iio.imread(p)).tolist())
    assert codes <= set(GREY_CODES) and {64, 105} & codes and {192, 226} & codes


def test_both_layouts_agree(blasts, tmp_path):
    """Write the BlastsOnline masks as grey codes: both layouts load the same classes."""
    a = load_blastocyst(blasts, size=40, progress=False)
    root = tmp_path / "blastocyst_gray"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    codes = np.array([0, 105, 128, 226, 255], np.uint8)
    from medseg_kit.data.blastocyst import decode_blastocyst, scan_blastocyst

    for item in scan_blastocyst(blasts).items:
        img, mask = decode_blastocyst(item, channels=1)
        iio.imwrite(root / "images" / f"{item.id}.png", img[..., 0])
        iio.imwrite(root / "masks" / f"{item.id}.PNG", codes[mask])
    b = load_blastocyst(tmp_path, size=40, progress=False, layout="gray")
    assert np.array_equal(a.masks, b.masks) and np.array_equal(a.images, b.images)


def test_unknown_grey_value_names_file_and_value(gray, tmp_path):
    dst = tmp_path / "g"
    shutil.copytree(gray, dst)
    mask = sorted((dst / "blastocyst_gray" / "masks").iterdir())[1]
    m = iio.imread(mask)
    m[0, 0] = 77
    iio.imwrite(mask, m)
    with pytest.raises(DataError, match=r"grey value\(s\) \[77\]") as e:
        load_blastocyst(dst, size=16, progress=False)
    assert e.value.kind == MASK_VALUES and mask.name in str(e.value)


def test_16bit_and_rgba_grey_masks(gray, tmp_path):
    dst = tmp_path / "g"
    shutil.copytree(gray, dst)
    masks = sorted((dst / "blastocyst_gray" / "masks").iterdir())
    m0, m1 = iio.imread(masks[0]), iio.imread(masks[1])
    iio.imwrite(masks[0], m0.astype(np.uint16) * 257)
    iio.imwrite(masks[1], np.dstack([m1, m1, m1, np.full_like(m1, 255)]))
    a = load_blastocyst(gray, size=24, progress=False)
    b = load_blastocyst(dst, size=24, progress=False)
    assert np.array_equal(a.masks, b.masks)


def test_missing_mask(blasts, tmp_path):
    dst = tmp_path / "b"
    shutil.copytree(blasts, dst)
    victim = sorted((dst / "GT_TE").iterdir())[0]
    victim.unlink()
    with pytest.raises(DataError, match="no TE mask") as e:
        load_blastocyst(dst, size=16, progress=False)
    assert e.value.kind == MISSING_MASK


def test_rgb_binary_masks(blasts, tmp_path):
    """24-bit BMP masks (white on black) read like 8-bit ones."""
    dst = tmp_path / "b"
    shutil.copytree(blasts, dst)
    for p in (dst / "GT_ZP").iterdir():
        m = iio.imread(p)
        iio.imwrite(p, np.dstack([m, m, m]), extension=".bmp")
    a = load_blastocyst(blasts, size=24, progress=False)
    b = load_blastocyst(dst, size=24, progress=False)
    assert np.array_equal(a.masks, b.masks)


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no blastocyst data"):
        load_dataset("blastocyst", tmp_path, size=16)
    (tmp_path / "Images").mkdir()
    for d in ("GT_ICM", "GT_TE", "GT_ZP"):
        (tmp_path / d).mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_dataset("blastocyst", tmp_path, size=16)


def test_compose_derives_blastocoel():
    yy, xx = np.mgrid[0:41, 0:41]
    r = np.hypot(yy - 20, xx - 20)
    zp, te = (r <= 18) & (r > 15), (r <= 15) & (r > 12)
    icm = (np.hypot(yy - 20, xx - 8) < 4) & (r <= 15)
    out = compose_blastsonline(zp, te, icm)
    assert (out[zp] == ZP).all() and (out[te & ~icm] == TE).all() and (out[icm] == ICM).all()
    assert (out[r < 10] != 0).all() and (out[(r < 10) & ~icm] == BLASTOCOEL).all()
    assert (out[r > 18.5] == 0).all()
    open_ring = zp & ~((xx > 35) & (abs(yy - 20) < 3))  # a gap: fill fails, hull is used
    out2 = compose_blastsonline(open_ring, te, icm)
    assert (out2[(r < 10) & ~icm] == BLASTOCOEL).all()


def test_synthetic_deterministic_and_drawn(tmp_path):
    a = synthesize("blastocyst", tmp_path / "a", n=2, seed=5, image_size=(56, 64),
                   progress=False)
    b = synthesize("blastocyst", tmp_path / "b", n=2, seed=5, image_size=(56, 64),
                   progress=False)
    da, db = (load_blastocyst(p, size=32, progress=False) for p in (a, b))
    assert np.array_equal(da.images, db.images) and np.array_equal(da.masks, db.masks)
    rng = np.random.default_rng(0)
    means = []
    for _ in range(4):
        img, mask, parts = synth_blastocyst_image(rng, 160, 160)
        assert np.array_equal(mask, compose_blastsonline(*parts))
        means.append([img[mask == k].mean() if (mask == k).any() else np.nan
                      for k in range(5)])
    m = np.nanmean(means, axis=0)
    # each class has its own tone: ICM and TE darker than the fluid, ZP brighter
    assert m[ICM] < m[BLASTOCOEL] - 5 and m[TE] < m[BLASTOCOEL] and m[ZP] > m[BLASTOCOEL] + 5


def test_a_root_with_both_layouts_is_refused(tmp_path, capsys):
    """A folder holding the BlastsOnline layout and a grey-coded one: no silent pick; the
    message names both, and either way of choosing works."""
    root = synthesize("blastocyst", tmp_path / "both", n=2, seed=0, image_size=(40, 44),
                      progress=False)
    synthesize("blastocyst", root, n=3, seed=1, image_size=(40, 44), layout="gray",
               progress=False)
    gray = root / "blastocyst_gray"
    with pytest.raises(DataError, match="ambiguous") as e:
        load_dataset("blastocyst", root, size=16, progress=False)
    msg = str(e.value)
    assert (f"found the BlastsOnline layout in {root} and the grey-coded layout in {gray}"
            in msg)
    assert f"point the root (--root, --data-root) at {gray}" in msg
    assert "--layout blastsonline or --layout gray" in msg and e.value.kind == LAYOUT
    assert len(load_dataset("blastocyst", root, size=16, progress=False, layout="gray")) == 3
    assert len(load_dataset("blastocyst", root, size=16, progress=False,
                            layout="blastsonline")) == 2
    assert len(load_dataset("blastocyst", gray, size=16, progress=False)) == 3
    from medseg_kit.data.cli import main

    assert main(["data", "check", "--dataset", "blastocyst", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "ambiguous" in out and "NOT OK" in out
    assert main(["data", "check", "--dataset", "blastocyst", "--root", str(root),
                 "--layout", "gray"]) == 0
    assert "3 samples" in capsys.readouterr().out


def test_two_sibling_layouts_are_refused(blasts, gray, tmp_path):
    shutil.copytree(blasts, tmp_path / "BlastsOnline")
    shutil.copytree(gray / "blastocyst_gray", tmp_path / "blastocyst_gray")
    with pytest.raises(DataError, match="ambiguous") as e:
        load_dataset("blastocyst", tmp_path, size=16, progress=False)
    assert (f"at {tmp_path / 'BlastsOnline'} or {tmp_path / 'blastocyst_gray'}"
            in str(e.value))
    shutil.copytree(blasts, tmp_path / "copy")  # two of one kind: layout= does not help
    with pytest.raises(DataError, match="ambiguous") as e:
        load_dataset("blastocyst", tmp_path, size=16, progress=False, layout="blastsonline")
    assert "--layout" not in str(e.value) and str(tmp_path / "copy") in str(e.value)
    d = load_dataset("blastocyst", tmp_path, size=16, progress=False, layout="gray")
    assert len(d) == N and d.meta[0]["layout"] == "gray"
