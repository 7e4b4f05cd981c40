"""check_dataset reports every problem; the data CLI commands."""

import argparse
import shutil

import imageio.v3 as iio
import numpy as np
import pytest

from medseg_kit.data import DataError, load_dataset
from medseg_kit.data.base import (
    MASK_VALUES,
    MISSING_MASK,
    SIZE_MISMATCH,
    UNREADABLE,
    synthesize,
)
from medseg_kit.data.check import check_dataset
from medseg_kit.data.cli import add_data_commands


@pytest.fixture(scope="module")
def kv(tmp_path_factory):
    root = tmp_path_factory.mktemp("kvc")
    synthesize("kvasir", root, n=6, seed=0, min_size=(40, 48), max_size=(48, 56),
               progress=False)
    return root


@pytest.fixture
def broken(kv, tmp_path):
    """Kvasir data with four different problems."""
    dst = tmp_path / "broken"
    shutil.copytree(kv, dst)
    base = dst / "Kvasir-SEG"
    imgs, masks = sorted((base / "images").iterdir()), sorted((base / "masks").iterdir())
    imgs[0].write_bytes(imgs[0].read_bytes()[:300])  # truncated JPEG
    iio.imwrite(masks[1], np.zeros((7, 9), np.uint8), extension=".jpg")  # wrong size
    masks[2].unlink()  # missing
    iio.imwrite(masks[3], np.full((4, 4), 70000 % 65536, np.uint16), extension=".png")
    masks[3].rename(masks[3].with_suffix(".jpg"))  # 16-bit values that are no 8-bit mask
    (base / "masks" / "orphan.jpg").write_bytes(masks[4].read_bytes())
    return dst, imgs, masks


def _parser():
    p = argparse.ArgumentParser(prog="medseg-kit")
    add_data_commands(p.add_subparsers(dest="command", required=True))
    return p


def test_clean_dataset_is_ok(kv):
    r = check_dataset("kvasir", kv)
    assert r.ok and r.counts["samples"] == 6 and r.counts["decoded"] == 6
    assert set(r.class_pixels) == {"background", "polyp"} and "OK" in r.format()


def test_reports_every_problem(broken):
    root, imgs, masks = broken
    r = check_dataset("kvasir", root)
    kinds = r.by_kind()
    assert not r.ok and r.counts["samples"] == 5 and r.counts["extra_files"] == 1
    assert {MISSING_MASK, UNREADABLE, SIZE_MISMATCH, MASK_VALUES} <= set(kinds)
    assert kinds[MISSING_MASK][0].path.endswith(masks[2].name)
    assert kinds[UNREADABLE][0].path == str(imgs[0])
    assert kinds[SIZE_MISMATCH][0].path == str(masks[1])
    assert r.counts["decoded"] == 2
    text = r.format()
    for p in (imgs[0], masks[1], masks[2]):
        assert p.name in text
    assert "unused file(s) (1)" in text and "orphan.jpg" in text
    assert "NOT OK" in text


def test_loader_stops_with_a_named_file(broken):
    root, imgs, masks = broken
    with pytest.raises(DataError, match=masks[2].name):
        load_dataset("kvasir", root, size=16, progress=False)
    masks_dir = root / "Kvasir-SEG" / "masks"
    shutil.copy(masks[4], masks_dir / masks[2].name)
    with pytest.raises(DataError, match=imgs[0].name):
        load_dataset("kvasir", root, size=16, progress=False)


def test_layout_only_and_empty(kv, tmp_path):
    r = check_dataset("kvasir", kv, decode=False)
    assert r.ok and r.counts["decoded"] == 0
    r = check_dataset("kvasir", tmp_path)
    assert not r.ok and r.problems[0].kind == "empty"


def test_blastocyst_bad_grey_value(tmp_path):
    root = synthesize("blastocyst", tmp_path, n=3, seed=0, layout="gray",
                      image_size=(40, 44), progress=False)
    mask = sorted((root / "blastocyst_gray" / "masks").iterdir())[0]
    m = iio.imread(mask)
    m[:2, :2] = 3
    iio.imwrite(mask, m)
    r = check_dataset("blastocyst", root)
    assert [p.kind for p in r.problems] == [MASK_VALUES] and r.counts["decoded"] == 2
    assert "inner cell mass" in r.class_pixels


def test_cli_check(kv, broken, capsys):
    args = _parser().parse_args(["data", "check", "--dataset", "kvasir", "--root", str(kv)])
    assert args.func(args) == 0 and "OK" in capsys.readouterr().out
    root, imgs, _ = broken
    args = _parser().parse_args(["data", "check", "--dataset", "kvasir", "--root",
                                 str(root)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "missing_mask" in out and imgs[0].name in out


def test_unused_files_are_named(kv, tmp_path, capsys):
    dst = tmp_path / "k"
    shutil.copytree(kv, dst)
    masks = dst / "Kvasir-SEG" / "masks"
    some = sorted(masks.iterdir())[0]
    orphans = [masks / f"orphan{i:02d}.jpg" for i in range(13)]
    for o in orphans:
        shutil.copy(some, o)
    r = check_dataset("kvasir", dst)
    assert r.ok and r.counts["extra_files"] == 13
    text = r.format()
    assert "unused file(s) (13): in the layout, but no sample uses them" in text
    for o in orphans[:10]:
        assert f"  - {o}" in text
    assert orphans[10].name not in text and "  ... and 3 more" in text
    assert all(o.name in r.format(extra_limit=20) for o in orphans)
    args = _parser().parse_args(["data", "check", "--dataset", "kvasir", "--root", str(dst)])
    assert args.func(args) == 0
    assert str(orphans[0]) in capsys.readouterr().out


def test_list_datasets_is_the_registry():
    from medseg_kit.data import LOADERS, list_datasets

    assert list_datasets() == sorted(LOADERS) == ["blastocyst", "ham10000", "kvasir"]
    with pytest.raises(SystemExit):
        _parser().parse_args(["data", "check", "--dataset", "nope", "--root", "x"])
    for name in list_datasets():
        assert _parser().parse_args(["data", "check", "--dataset", name, "--root", "x"])


def test_cli_synth(tmp_path, capsys):
    args = _parser().parse_args(["data", "synth", "--dataset", "ham10000", "--out",
                                 str(tmp_path / "h"), "--n", "2", "--seed", "3"])
    assert args.func(args) == 0 and "images/s" in capsys.readouterr().out
    assert len(load_dataset("ham10000", tmp_path / "h", size=16, progress=False)) == 2
    args = _parser().parse_args(["data", "synth", "--dataset", "blastocyst", "--out",
                                 str(tmp_path / "b"), "--n", "1", "--layout", "gray"])
    assert args.func(args) == 0 and (tmp_path / "b" / "blastocyst_gray").is_dir()
    with pytest.raises(SystemExit):
        _parser().parse_args(["data", "synth", "--dataset", "nope", "--out", "x"])
