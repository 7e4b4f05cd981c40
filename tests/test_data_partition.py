"""Sites: every scheme deterministic, every index covered exactly once, summaries right."""

import ast
from pathlib import Path

import numpy as np
import pytest

import medseg_kit.data
from medseg_kit.data import PARTITIONS, SegData, make_sites, partition_iid
from medseg_kit.data import base as data_base
from medseg_kit.data import partition as data_partition
from medseg_kit.data.partition import (
    acquisition_profile,
    apply_acquisition,
    apply_site_shift,
    partition_acquisition,
    partition_dirichlet,
    partition_quantity,
    site_labels,
)


def _covers(parts, n):
    allidx = np.concatenate([np.asarray(p) for p in parts])
    return len(allidx) == n and np.array_equal(np.sort(allidx), np.arange(n))


def _same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    n = 60
    masks = np.zeros((n, 16, 16), np.uint8)
    for i in range(n):
        r = 1 + i % 7
        masks[i, 8 - r:8 + r, 8 - r:8 + r] = 1 + (i % 3 == 0)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    dx = rng.choice(["nv", "mel", "bkl", "bcc"], n, p=[0.6, 0.2, 0.1, 0.1])
    meta = [{"id": str(i), "dx": str(dx[i]), "localization": ["back", "face"][i % 2]}
            for i in range(n)]
    return SegData("toy", images, masks, ("background", "a", "b"), meta)


LABELS = np.array(["x"] * 50 + ["y"] * 30 + ["z"] * 20)


@pytest.mark.parametrize("make", [
    lambda s: partition_iid(100, 4, s),
    lambda s: partition_quantity(100, 4, s, concentration=0.5),
    lambda s: partition_dirichlet(LABELS, 4, 0.3, s),
    lambda s: partition_acquisition(100, 4, s),
])
def test_deterministic_and_covering(make):
    a, b, c = make(0), make(0), make(1)
    assert _covers(a, 100) and _covers(c, 100)
    assert _same(a, b) and not _same(a, c)
    assert sum(a.summary["counts"]) == 100 and len(a) == 4
    assert all(np.all(np.diff(p) > 0) for p in a)  # sorted, no repeats


def test_iid_matches_the_old_function():
    perm = np.random.default_rng(3).permutation(23)
    old = [np.sort(s) for s in np.array_split(perm, 4)]
    new = partition_iid(23, 4, seed=3)
    assert isinstance(new, list) and _same(old, new) and new.scheme == "iid"
    with pytest.raises(ValueError):
        partition_iid(3, 4)


def test_quantity_skew_and_min_size():
    sizes = partition_quantity(200, 5, seed=0, concentration=0.3, min_size=3).summary["counts"]
    assert min(sizes) >= 3 and max(sizes) > 2 * min(sizes)
    flat = partition_quantity(200, 5, seed=0, concentration=1000).summary["counts"]
    assert max(flat) - min(flat) < 20


def test_dirichlet_histogram_and_skew():
    labels = np.repeat([f"c{i}" for i in range(8)], 25)
    skewed = partition_dirichlet(labels, 4, concentration=0.1, seed=0, min_size=2)
    flat = partition_dirichlet(labels, 4, concentration=1000, seed=0)
    for part in (skewed, flat):
        hist = np.array(part.summary["histogram"])
        assert part.summary["label_names"] == [f"c{i}" for i in range(8)]
        assert hist.sum(0).tolist() == [25] * 8
        assert hist.sum(1).tolist() == part.summary["counts"]
        assert min(part.summary["counts"]) >= 2

    def purity(p):  # mean share of each site's most common label
        h = np.array(p.summary["histogram"], float)
        return float(np.mean(h.max(1) / h.sum(1)))

    assert purity(skewed) > purity(flat) + 0.2


def test_site_labels(data):
    assert list(site_labels(data, "dx")) == [m["dx"] for m in data.meta]
    size = site_labels(data, "lesion_size")
    assert set(size) == {"small", "medium", "large"}
    frac = (data.masks > 0).mean((1, 2))
    assert frac[size == "small"].max() <= frac[size == "large"].min()
    pres = site_labels(data, "class_presence")
    assert set(pres) == {"no a", "no b"}  # each toy mask holds one of the two classes
    assert set(site_labels(data, "dominant_class")) == {"a", "b"}
    with pytest.raises(ValueError, match="no field"):
        site_labels(data, "nonsense")


def test_partitions_is_the_one_list_of_schemes(data):
    assert PARTITIONS == ("iid", "quantity", "label", "acquisition")
    assert medseg_kit.data.PARTITIONS is data_partition.PARTITIONS
    assert "PARTITIONS" in medseg_kit.data.__all__
    for scheme in PARTITIONS:
        assert make_sites(data, scheme, num_sites=2).scheme == scheme
    with pytest.raises(ValueError, match="unknown partition scheme 'dirichlet'; choose from "
                       "iid, quantity, label, acquisition"):
        make_sites(data, "dirichlet")


def test_base_does_not_import_partition():
    """base.py is the bottom layer: partition builds on it, never the other way round."""
    tree = ast.parse(Path(data_base.__file__).read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(node.module or "")
            imported.update(a.name for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    assert not any("partition" in name for name in imported), imported
    assert not hasattr(data_base, "partition_iid")
    assert medseg_kit.data.partition_iid is data_partition.partition_iid


@pytest.mark.parametrize("scheme", PARTITIONS)
@pytest.mark.parametrize("by", [None, "localization", "lesion_size", "class_presence"])
def test_make_sites(data, scheme, by):
    p = make_sites(data, scheme, num_sites=3, seed=4, concentration=0.5, by=by)
    assert _covers(p, len(data)) and p.scheme == scheme
    assert p.summary["by"] == (by or "dx")
    assert np.array(p.summary["histogram"]).sum() == len(data)
    assert _same(p, make_sites(data, scheme, num_sites=3, seed=4, concentration=0.5, by=by))
    assert (p.site_of() >= 0).all()


def test_acquisition_profiles(data):
    p0, p0b, p1 = acquisition_profile(0, 7), acquisition_profile(0, 7), acquisition_profile(1, 7)
    assert p0 == p0b and p0 != p1
    x = data.images[:5]
    a, b = apply_acquisition(x, p0, seed=7), apply_acquisition(x, p0, seed=7)
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == x.shape
    assert not np.array_equal(a, apply_acquisition(x, p1, seed=7))
    ident = apply_acquisition(x, acquisition_profile(0, 7, strength=0.0))
    assert np.abs(ident.astype(int) - x).max() <= 1
    grey = apply_acquisition(x[..., :1], p0)
    assert grey.shape == x[..., :1].shape


def test_apply_site_shift(data):
    part = make_sites(data, "acquisition", num_sites=3, seed=1)
    shifted = apply_site_shift(data, part)
    assert np.array_equal(shifted.masks, data.masks)
    assert not np.array_equal(shifted.images, data.images)
    assert [m["site"] for m in shifted.meta] == part.site_of().tolist()
    assert "site" not in data.meta[0]  # the input is untouched
    again = apply_site_shift(data, part)
    assert np.array_equal(again.images, shifted.images)
    assert len(part.summary["profiles"]) == 3
