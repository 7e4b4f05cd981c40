"""The decoded-and-resized cache: identical arrays, invalidation, atomic writes."""

import os
import warnings

import imageio.v3 as iio
import numpy as np
import pytest

from medseg_kit.data import base, load_dataset, synthesize
from medseg_kit.data.base import CACHE_DIR


@pytest.fixture
def kv(tmp_path):
    synthesize("kvasir", tmp_path, n=4, seed=0, min_size=(40, 50), max_size=(48, 60),
               progress=False)
    return tmp_path


@pytest.fixture
def calls(monkeypatch):
    """Count how often the real loader runs (a cache hit does not run it)."""
    counter = {"n": 0}
    real = base.LOADERS["kvasir"]

    def counting(*a, **k):
        counter["n"] += 1
        return real(*a, **k)

    monkeypatch.setitem(base.LOADERS, "kvasir", counting)
    return counter


def _caches(root):
    return sorted((root / CACHE_DIR).glob("*.npz"))


def test_second_load_comes_from_cache(kv, calls):
    a = load_dataset("kvasir", kv, size=24, progress=False)
    b = load_dataset("kvasir", kv, size=24, progress=False)
    assert calls["n"] == 1 and len(_caches(kv)) == 1
    assert np.array_equal(a.images, b.images) and np.array_equal(a.masks, b.masks)
    assert a.meta == b.meta and a.class_names == b.class_names and a.synthetic == b.synthetic
    assert b.images.dtype == np.uint8 and b.masks.dtype == np.uint8
    assert not list((kv / CACHE_DIR).glob(".tmp-*"))  # temp file renamed into place


def test_size_and_options_have_their_own_cache(kv, calls):
    load_dataset("kvasir", kv, size=24, progress=False)
    load_dataset("kvasir", kv, size=16, progress=False)
    assert calls["n"] == 2 and len(_caches(kv)) == 2


def test_changed_file_invalidates(kv, calls):
    a = load_dataset("kvasir", kv, size=24, progress=False)
    mask = sorted((kv / "Kvasir-SEG" / "masks").iterdir())[0]
    m = iio.imread(mask)
    iio.imwrite(mask, np.zeros_like(m), extension=".jpg")
    st = mask.stat()
    os.utime(mask, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    b = load_dataset("kvasir", kv, size=24, progress=False)
    assert calls["n"] == 2
    assert a.masks[0].any() and not b.masks[0].any()
    assert len(_caches(kv)) == 1  # the stale cache was removed


def test_removed_file_invalidates(kv, calls):
    load_dataset("kvasir", kv, size=24, progress=False)
    for sub in ("images", "masks"):
        sorted((kv / "Kvasir-SEG" / sub).iterdir())[-1].unlink()
    d = load_dataset("kvasir", kv, size=24, progress=False)
    assert calls["n"] == 2 and len(d) == 3


def test_damaged_cache_is_rebuilt(kv, calls):
    a = load_dataset("kvasir", kv, size=24, progress=False)
    _caches(kv)[0].write_bytes(b"not an npz")
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        b = load_dataset("kvasir", kv, size=24, progress=False)
    assert calls["n"] == 2 and np.array_equal(a.images, b.images)
    c = load_dataset("kvasir", kv, size=24, progress=False)
    assert calls["n"] == 2 and np.array_equal(a.images, c.images)


def test_cache_off(kv, calls):
    load_dataset("kvasir", kv, size=24, progress=False, cache=False)
    load_dataset("kvasir", kv, size=24, progress=False, cache=False)
    assert calls["n"] == 2 and not (kv / CACHE_DIR).exists()


def test_unwritable_cache_warns_and_loads(kv, monkeypatch):
    def boom(*a, **k):
        raise PermissionError("read-only")

    monkeypatch.setattr("medseg_kit._atomic.tempfile.mkstemp", boom)
    with pytest.warns(UserWarning, match="cannot write the cache"):
        d = load_dataset("kvasir", kv, size=24, progress=False)
    assert len(d) == 4 and not _caches(kv)


def test_every_dataset_uses_the_cache(tmp_path):
    for name, kw in (("ham10000", {"image_size": (40, 50)}),
                     ("blastocyst", {"image_size": (40, 48)})):
        root = synthesize(name, tmp_path / name, n=3, seed=0, progress=False, **kw)
        a = load_dataset(name, root, size=16, progress=False)
        b = load_dataset(name, root, size=16, progress=False)
        assert len(_caches(root)) == 1 and np.array_equal(a.masks, b.masks)
        assert a.meta == b.meta
