"""The run loop on every synthetic dataset in its real layout, through the CLI, plus the
site schemes and augmentation wired into a run."""

import json

import numpy as np
import pytest

from medseg_kit.cli import main
from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.federated.run import Run

TINY = ["--width", "4", "--size", "32", "--sites", "2", "--rounds", "1", "--batch-size", "4",
        "--n-images", "16", "--device", "cpu", "--json"]


@pytest.mark.parametrize("dataset,classes", [("kvasir", 2), ("ham10000", 2), ("blastocyst", 5)])
def test_train_synthetic_dataset_from_the_cli(dataset, classes, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "run"
    assert main(["train", "--dataset", dataset, "--synthetic", "--out", str(out)] + TINY) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 0.0 <= final["dice"] <= 1.0
    records = json.loads((out / "history.json").read_text())["records"]
    per_class = [k for k in records[-1] if k.startswith("dice/")]
    assert len(per_class) == classes  # one entry per class, by name
    assert "dice/background" in per_class
    synth = tmp_path / "data" / "synthetic"
    assert any(p.name.startswith(dataset) for p in synth.iterdir())


def small_config(**kw):
    base = dict(dataset="ham10000", width=4, size=32, n_images=40, sites=3, rounds=1,
                batch_size=4, device="cpu")
    base.update(kw)
    return RunConfig(**base)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path))


def test_label_skew_sites_differ_and_cover_everything(data_dir):
    run = Run(small_config(partition="label", concentration=0.1), progress=False)
    idx = np.concatenate([s.train_idx for s in run.sites])
    assert sorted(idx.tolist()) == list(range(len(run.train)))
    hist = np.array(run.partition.summary["histogram"])
    shares = hist / hist.sum(1, keepdims=True)
    assert np.abs(shares - shares.mean(0)).max() > 0.1  # the sites' label mixes differ


def test_acquisition_shift_changes_each_sites_images(data_dir):
    plain = Run(small_config(), progress=False)
    shifted = Run(small_config(partition="acquisition"), progress=False)
    assert plain.train.masks.tobytes() == shifted.train.masks.tobytes()
    for site in shifted.sites:
        a = plain.train.images[site.train_idx].astype(float)
        b = shifted.train.images[site.train_idx].astype(float)
        assert np.abs(a - b).mean() > 1.0


def test_augmentation_changes_batches_but_is_reproducible(data_dir):
    run = Run(small_config(augment=True), progress=False)
    plain = Run(small_config(), progress=False)
    site = run.sites[0]
    xa, ya = next(run.batches(site.train_idx, 0, 0))
    xb, _ = next(run.batches(site.train_idx, 0, 0))
    xp, _ = next(plain.batches(site.train_idx, 0, 0))
    assert (xa == xb).all() and not (xa == xp).all()
    h, _ = train(small_config(augment=True, rounds=1), progress=False)
    assert np.isfinite(h.rows(GLOBAL)[-1]["train_loss"])


def test_the_run_splits_ham10000_by_lesion(data_dir):
    run = Run(small_config(n_images=60), progress=False)
    assert run.train.group_key == "lesion_id"
    train_lesions = set(run.train.groups())
    assert train_lesions and not train_lesions & set(run.test.groups())
