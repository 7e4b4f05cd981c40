"""Plot helpers return figures; the sites widget redraws; open_dataset picks real or synthetic."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medseg_kit.data import make_sites, synthesize  # noqa: E402
from medseg_kit.data.base import synthetic_root  # noqa: E402
from medseg_kit.data.catalog import describe, find_real, open_dataset  # noqa: E402
from medseg_kit.data.partition import apply_site_shift, profile_table  # noqa: E402
from medseg_kit.data.plots import (  # noqa: E402
    overlay,
    plot_class_balance,
    plot_partition,
    plot_partitions,
    plot_samples,
    plot_site_images,
)

SMALL = {"ham10000": {"image_size": (40, 52)}, "blastocyst": {"image_size": (40, 44)},
         "kvasir": {"min_size": (36, 40), "max_size": (40, 48)}}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MEDSEG_DATA_DIR", str(tmp_path_factory.mktemp("dd")))
    out = {}
    for name, kw in SMALL.items():  # small images, made where open_dataset looks for them
        root = synthetic_root(name, 6, 0)
        synthesize(name, root, n=6, seed=0, progress=False, **kw)
        (root / "COMPLETE").write_text("ok\n")
        out[name] = open_dataset(name, size=24, n_synthetic=6, seed=0)
    yield out
    mp.undo()


def test_open_dataset_synthetic(datasets):
    for name, d in datasets.items():
        assert d.synthetic and len(d) == 6 and d.size == 24
        assert "SYNTHETIC" in describe(d) and name in describe(d)


def test_find_real(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path))
    assert find_real("kvasir") is None
    synthesize("kvasir", tmp_path, n=2, seed=0, min_size=(30, 30), max_size=(32, 32),
               progress=False)  # lands in <data dir>/Kvasir-SEG, where the installer puts it
    assert find_real("kvasir") == tmp_path / "Kvasir-SEG"
    d = open_dataset("kvasir", size=16, n_synthetic=3, limit=1)
    assert len(d) == 1  # the "real" (installed) folder, limited


def test_overlay():
    img = np.zeros((8, 8, 1), np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 2
    out = overlay(img, mask)
    assert out.shape == (8, 8, 3) and out[0, 0].sum() == 0 and out[3, 3].sum() > 0


def test_figures(datasets):
    ham, blast = datasets["ham10000"], datasets["blastocyst"]
    figs = [plot_samples(ham, n=4, label_key="dx"), plot_samples(blast, n=3, cols=2),
            plot_class_balance(ham, "dx"), plot_class_balance(blast)]
    parts = {s: make_sites(ham, s, 2, seed=0) for s in ("iid", "quantity", "label")}
    figs += [plot_partitions(parts, normalize=True), plot_partition(parts["iid"])]
    mixed = {"a": parts["iid"], "b": make_sites(blast, "label", 2, by="class_presence")}
    figs.append(plot_partitions(mixed))
    acq = make_sites(ham, "acquisition", 2, seed=0)
    figs.append(plot_site_images(apply_site_shift(ham, acq), acq, per_site=4))
    assert all(isinstance(f, Figure) for f in figs)
    assert "gain" in profile_table(acq) and "no acquisition" in profile_table(parts["iid"])
    plt.close("all")


def test_sites_widget(datasets):
    pytest.importorskip("ipywidgets")
    from medseg_kit.widgets import SiteExplorer

    box = SiteExplorer(datasets, num_sites=2).widget
    (dataset, scheme, by), (sites, conc) = box.children[0].children, box.children[1].children
    scheme.value = "quantity"
    sites.value = 3
    conc.value = 10.0
    dataset.value = "blastocyst"
    assert "class_presence" in by.options and "dx" not in by.options
    by.value = "class_presence"
    plt.close("all")
