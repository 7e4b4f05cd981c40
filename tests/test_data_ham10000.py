"""HAM10000: the loader on synthetic data in the real layout, its quirks and bad inputs."""

import csv
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from medseg_kit.data import DataError, load_dataset, synthesize, train_test_split
from medseg_kit.data.base import DUPLICATE, MISSING_MASK, SIZE_MISMATCH, UNREADABLE
from medseg_kit.data.ham10000 import (
    DX_MIX,
    MASK_DIR,
    draw_lesion_params,
    lesion_split,
    load_ham10000,
    scan_ham10000,
    synth_ham_metadata,
    synth_skin_image,
)

N = 10


@pytest.fixture(scope="module")
def ham_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ham") / "HAM10000"
    synthesize("ham10000", root, n=N, seed=3, image_size=(60, 80), progress=False)
    return root


@pytest.fixture
def ham_copy(ham_root, tmp_path):
    dst = tmp_path / "copy"
    shutil.copytree(ham_root, dst)
    return dst


def _first(root, pattern):
    return sorted(p for p in root.rglob(pattern) if "__MACOSX" not in p.parts)[0]


def test_loads_real_layout(ham_root):
    assert (ham_root / "HAM10000_images_part_1").is_dir()
    assert (ham_root / "HAM10000_images_part_2").is_dir()
    assert (ham_root / MASK_DIR).is_dir()
    d = load_ham10000(ham_root, size=32, progress=False)
    assert len(d) == N and d.images.shape == (N, 32, 32, 3) and d.masks.shape == (N, 32, 32)
    assert set(np.unique(d.masks)) <= {0, 1} and d.masks.any()
    assert d.synthetic and d.class_names == ("background", "lesion") and d.model_classes == 1
    m = d.meta[0]
    assert m["id"].startswith("ISIC_") and m["lesion_id"].startswith("HAM_")
    assert m["dx"] in DX_MIX and (m["height"], m["width"]) == (60, 80)
    assert {"dx_type", "age", "sex", "localization", "dataset"} <= set(m)


def test_macos_junk_is_ignored(ham_root, ham_copy):
    junk = list((ham_root / "__MACOSX").rglob("._*"))
    assert junk, "the synthetic layout should carry __MACOSX stubs like the real zip"
    img = _first(ham_copy, "ISIC_*.jpg")
    (img.parent / f"._{img.name}").write_bytes(b"\x00\x05\x16\x07junk")
    (ham_copy / MASK_DIR / ".DS_Store").write_bytes(b"junk")
    assert len(scan_ham10000(ham_copy).items) == N
    assert len(load_ham10000(ham_copy, size=16, progress=False)) == N


def test_merged_folder_and_tab_metadata(ham_root, ham_copy):
    """Images in one merged folder, metadata as Dataverse's quoted .tab file."""
    merged = ham_copy / "images"
    merged.mkdir()
    for p in ham_copy.glob("HAM10000_images_part_*/*.jpg"):
        p.rename(merged / p.name)
    csv_file = ham_copy / "HAM10000_metadata.csv"
    rows = list(csv.reader(csv_file.open()))
    with open(ham_copy / "HAM10000_metadata.tab", "w", newline="") as f:
        csv.writer(f, delimiter="\t", quoting=csv.QUOTE_NONNUMERIC).writerows(rows)
    csv_file.unlink()
    a = load_ham10000(ham_root, size=24, progress=False)
    b = load_ham10000(ham_copy, size=24, progress=False)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert [m["lesion_id"] for m in a.meta] == [m["lesion_id"] for m in b.meta]


def test_duplicate_image_copies(ham_copy):
    img = _first(ham_copy, "ISIC_*.jpg")
    (ham_copy / "merged").mkdir()
    shutil.copy(img, ham_copy / "merged" / img.name)  # same bytes: fine
    assert len(scan_ham10000(ham_copy).items) == N
    (ham_copy / "merged" / img.name).write_bytes(img.read_bytes()[:-10])  # different
    with pytest.raises(DataError, match=img.stem) as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert e.value.kind == DUPLICATE


def test_split_never_shares_a_lesion():
    rows = synth_ham_metadata(np.random.default_rng(0), 400)
    groups = [r["lesion_id"] for r in rows]
    assert len(set(groups)) < len(groups)  # several images per lesion
    for seed in range(5):
        tr, te = train_test_split(len(rows), 0.25, seed=seed, groups=groups)
        assert not {groups[i] for i in tr} & {groups[i] for i in te}
        assert len(tr) + len(te) == len(rows) and 0.2 < len(te) / len(rows) < 0.3


def test_lesion_split_on_loaded_data(ham_root):
    d = load_ham10000(ham_root, size=16, progress=False)
    tr, te = lesion_split(d, 0.3, seed=1)
    lid = d.meta_values("lesion_id")
    assert not set(lid[tr]) & set(lid[te]) and len(tr) + len(te) == len(d)


def test_metadata_mix_is_realistic():
    rows = synth_ham_metadata(np.random.default_rng(1), 4000)
    dx = np.array([r["dx"] for r in rows])
    for k, share in DX_MIX.items():
        assert abs((dx == k).mean() - share) < max(0.02, share * 0.5), k
    per_lesion = len(rows) / len({r["lesion_id"] for r in rows})
    assert 1.2 < per_lesion < 1.5  # real: 10,015 images of 7,470 lesions = 1.34
    assert len({r["image_id"] for r in rows}) == len(rows)
    by_lesion = {}
    for r in rows:  # one lesion, one diagnosis
        by_lesion.setdefault(r["lesion_id"], set()).add(r["dx"])
    assert all(len(v) == 1 for v in by_lesion.values())


def test_synthetic_is_deterministic_and_mask_matches_drawing(tmp_path):
    a = synthesize("ham10000", tmp_path / "a", n=3, seed=7, image_size=(48, 64),
                   progress=False)
    b = synthesize("ham10000", tmp_path / "b", n=3, seed=7, image_size=(48, 64),
                   progress=False)
    da, db = (load_ham10000(p, size=32, progress=False) for p in (a, b))
    assert np.array_equal(da.images, db.images) and np.array_equal(da.masks, db.masks)
    meta = "HAM10000_metadata.csv"
    assert (a / meta).read_text() == (b / meta).read_text()
    rng = np.random.default_rng(0)
    for dx in DX_MIX:
        img, mask = synth_skin_image(rng, 90, 120, draw_lesion_params(rng, dx))
        assert set(np.unique(mask)) == {0, 255}
        inside, outside = img[mask > 0].astype(float), img[mask == 0].astype(float)
        # the masked region is the drawn lesion: its colour differs from the skin around
        assert np.linalg.norm(inside.mean(0) - outside.mean(0)) > 20, dx


def test_truncated_jpeg_names_the_file(ham_copy):
    img = _first(ham_copy, "ISIC_*.jpg")
    img.write_bytes(img.read_bytes()[: img.stat().st_size // 2])
    with pytest.raises(DataError, match=img.name) as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert e.value.kind == UNREADABLE and e.value.path == str(img)


def test_mask_of_another_size(ham_copy):
    mask = _first(ham_copy / MASK_DIR, "*_segmentation.png")
    iio.imwrite(mask, np.zeros((10, 10), np.uint8))
    with pytest.raises(DataError, match="expected the same size") as e:
        load_dataset("ham10000", ham_copy, size=16, progress=False)
    assert e.value.kind == SIZE_MISMATCH and mask.name in str(e.value)


def test_missing_mask_is_named(ham_copy):
    mask = _first(ham_copy / MASK_DIR, "*_segmentation.png")
    mask.unlink()
    with pytest.raises(DataError, match=mask.name) as e:
        load_dataset("ham10000", ham_copy, size=16, progress=False)
    assert e.value.kind == MISSING_MASK


def test_empty_folder(tmp_path):
    with pytest.raises(DataError, match="no HAM10000 metadata"):
        load_dataset("ham10000", tmp_path, size=16)
    with pytest.raises(DataError, match="not a folder"):
        load_dataset("ham10000", tmp_path / "nope", size=16)


def test_16bit_rgba_and_01_masks_are_converted(ham_root, ham_copy):
    """Documented conversions: 16-bit scaled, alpha dropped, 0/1 label images kept."""
    masks = sorted((ham_copy / MASK_DIR).glob("*_segmentation.png"))
    m0, m1, m2 = (iio.imread(p) for p in masks[:3])
    iio.imwrite(masks[0], m0.astype(np.uint16) * 257)
    iio.imwrite(masks[1], np.dstack([m1, m1, m1, np.full_like(m1, 255)]))
    iio.imwrite(masks[2], (m2 > 0).astype(np.uint8))
    a = load_ham10000(ham_root, size=24, progress=False)
    b = load_ham10000(ham_copy, size=24, progress=False)
    assert np.array_equal(a.masks, b.masks)


def test_metadata_missing_column(ham_copy):
    f = ham_copy / "HAM10000_metadata.csv"
    f.write_text(f.read_text().replace("lesion_id", "lesion", 1))
    with pytest.raises(DataError, match="lesion_id"):
        load_ham10000(ham_copy, size=16, progress=False)


def test_metadata_row_without_image_id(ham_copy):
    f = ham_copy / "HAM10000_metadata.csv"
    f.write_text(f.read_text() + "HAM_0000001,,nv,histo,50.0,male,back,rosendahl\n")
    with pytest.raises(DataError, match="has a row with no image_id") as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert "lesion_id='HAM_0000001'" in str(e.value) and e.value.path == str(f)


def test_empty_and_undecodable_files_say_so_in_one_line(ham_copy):
    img = _first(ham_copy, "ISIC_*.jpg")
    img.write_bytes(b"")
    with pytest.raises(DataError, match=f"image {img} is an empty file") as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert e.value.kind == UNREADABLE
    img.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match="no image decoder recognises its contents") as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert "\n" not in str(e.value) and e.value.path == str(img)


def test_size_mismatch_names_the_image_too(ham_copy):
    img = _first(ham_copy, "ISIC_*.jpg")
    iio.imwrite(img, np.zeros((12, 14, 3), np.uint8), extension=".jpg")
    with pytest.raises(DataError, match=f"but its image {img} is 14x12") as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert e.value.kind == SIZE_MISMATCH and "_segmentation.png" in e.value.path


def test_a_decoder_crash_becomes_a_named_error(ham_copy, monkeypatch):
    """Whatever a decoding library raises, the loader and the checker name the sample."""
    from medseg_kit.data import ham10000
    from medseg_kit.data.check import check_dataset

    def crash(path, *a, **k):
        raise ZeroDivisionError("deep inside a decoder")

    monkeypatch.setattr(ham10000, "read_image", crash)
    with pytest.raises(DataError, match=r"cannot decode sample ISIC_\d+ \(.*ISIC_\d+\.jpg, "
                       r".*_segmentation\.png\): ZeroDivisionError") as e:
        load_ham10000(ham_copy, size=16, progress=False)
    assert e.value.kind == UNREADABLE
    r = check_dataset("ham10000", ham_copy)
    assert r.counts["problems"] == N and "ZeroDivisionError" in r.problems[0].message
