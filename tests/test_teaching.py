"""Cached teaching runs: trained once, loaded after; keyed by config, version and source;
damaged or half-written entries never reach a notebook; summaries over seeds."""

import copy
import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medseg_kit import course, metrics, teaching
from medseg_kit.data.base import data_dir
from medseg_kit.federated import RunConfig
from medseg_kit.federated.run import GLOBAL, History
from tests.synthetic import discs

TINY = RunConfig(strategy="local", n_images=24, size=32, width=4, sites=2, rounds=1,
                 batch_size=4, device="cpu")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache and a counter of the trainings it does."""
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path))
    calls = []
    real = teaching.train

    def counting_train(config, *args, **kwargs):
        calls.append(config)
        return real(config, *args, **kwargs)

    monkeypatch.setattr(teaching, "train", counting_train)
    return calls


def _same(a, b):
    for name in ("images", "truths", "predictions", "sites"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    drop = lambda recs: [{k: v for k, v in x.items() if k != "seconds"} for x in recs]  # noqa: E731
    assert drop(a.history.records) == drop(b.history.records)
    assert a.class_names == b.class_names and a.config == b.config


def test_a_cache_hit_returns_the_same_run_without_training(cache):
    data = discs(24, 32)
    first = teaching.run(TINY, progress=False, data=data)
    assert len(cache) == 1
    assert (teaching.cache_dir() / teaching.cache_key(TINY) / "arrays.npz").is_file()
    again = teaching.run(TINY, progress=False, data=data)
    assert len(cache) == 1, "a cached run was trained again"
    _same(first, again)
    assert again.label == "local seed 0"
    assert again.final()["dice"] == first.history.rows()[-1]["dice"]


def test_predictions_are_each_sites_own_model(cache):
    """The stored predictions reproduce the history's per-site Dice of the last round:
    each test image was judged by the model of its own site (local: its own network)."""
    config = dataclasses.replace(TINY, rounds=4)
    r = teaching.run(config, progress=False, data=discs(24, 32))
    assert r.images.dtype == np.uint8 and r.images.shape[-1] == 3
    assert r.predictions.shape == r.truths.shape == r.images.shape[:3]
    assert sorted(set(r.sites.tolist())) == [0, 1]
    last = [x for x in r.history.records if x["round"] == config.rounds - 1 and x["site"] != GLOBAL]
    assert len(last) == 2 and all(rec["dice"] > 0.2 for rec in last), "nothing was learned"
    for rec in last:
        rows = r.sites == rec["site"]
        counts = metrics.overlap_counts(torch.from_numpy(r.predictions[rows]).long(),
                                        torch.from_numpy(r.truths[rows]).long(), 2).numpy()
        assert metrics.summarize(counts)["dice"] == pytest.approx(rec["dice"], abs=1e-9)
        assert rows.sum() == rec["n_test"]


def _other_value(value):
    """A value unlike ``value`` (the key hashes values; validity is not its business)."""
    if value is None:
        return 1
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, tuple | list | dict):
        return {"other": 1}
    raise AssertionError(f"no other value for {value!r}: add one")


def test_the_key_changes_with_every_config_field_the_version_and_the_source(monkeypatch):
    key = teaching.cache_key(TINY)
    assert key == teaching.cache_key(RunConfig(**TINY.to_dict()))
    for f in dataclasses.fields(RunConfig):
        other = copy.copy(TINY)
        setattr(other, f.name, _other_value(getattr(TINY, f.name)))
        assert teaching.cache_key(other) != key, f"changing {f.name} kept the key"
    monkeypatch.setattr(teaching, "__version__", "9.9.9")
    assert teaching.cache_key(TINY) != key, "a new package version kept the key"
    monkeypatch.undo()
    monkeypatch.setattr(teaching, "source_fingerprint", lambda: "changed")
    assert teaching.cache_key(TINY) != key, "a new source fingerprint kept the key"


def test_the_fingerprint_follows_training_code_not_pictures(tmp_path, monkeypatch):
    copy = tmp_path / "medseg_kit"
    shutil.copytree(teaching.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(teaching, "PACKAGE", copy)
    before = teaching.source_fingerprint.__wrapped__()
    (copy / "viz.py").write_text((copy / "viz.py").read_text() + "\n# a comment\n")
    assert teaching.source_fingerprint.__wrapped__() == before
    loss = copy / "federated" / "run.py"
    loss.write_text(loss.read_text() + "\n# a comment\n")
    assert teaching.source_fingerprint.__wrapped__() != before


def test_every_module_training_imports_is_fingerprinted():
    code = ("import sys; import medseg_kit.federated.run, medseg_kit.federated.strategies; "
            "print('\\n'.join(m.__file__ for n, m in sys.modules.items() "
            "if n.startswith('medseg_kit') and getattr(m, '__file__', None)))")
    files = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout.split()
    assert files
    for f in files:
        rel = Path(f).resolve().relative_to(teaching.PACKAGE)
        assert rel.parts[0] in teaching.FINGERPRINT_SOURCES, (
            f"training imports medseg_kit/{rel.as_posix()}, which the cache key ignores: "
            "add it to teaching.FINGERPRINT_SOURCES")


@pytest.mark.parametrize("damage", ["truncate_arrays", "garbage_json", "drop_arrays"])
def test_a_damaged_entry_is_trained_again(cache, damage):
    data = discs(24, 32)
    first = teaching.run(TINY, progress=False, data=data)
    folder = teaching.cache_dir() / teaching.cache_key(TINY)
    if damage == "truncate_arrays":
        blob = (folder / "arrays.npz").read_bytes()
        (folder / "arrays.npz").write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage_json":
        (folder / "entry.json").write_text("{not json")
    else:
        (folder / "arrays.npz").unlink()
    assert teaching.cached(TINY) is None
    again = teaching.run(TINY, progress=False, data=data)
    assert len(cache) == 2, "the damaged entry was not retrained"
    _same(first, again)  # training is deterministic: the same run comes back
    assert teaching.cached(TINY) is not None, "the retrained entry was not stored"


def test_an_interrupted_write_leaves_no_entry(cache, monkeypatch):
    real = teaching.atomic_write
    writes = []

    def interrupted(path, content):
        writes.append(path)
        if len(writes) == 2:  # the arrays are written; the entry file is not
            raise KeyboardInterrupt
        return real(path, content)

    monkeypatch.setattr(teaching, "atomic_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        teaching.run(TINY, progress=False, data=discs(24, 32))
    assert list(teaching.cache_dir().iterdir()) == [], "a half-written entry was left behind"
    monkeypatch.setattr(teaching, "atomic_write", real)
    teaching.run(TINY, progress=False, data=discs(24, 32))
    assert len(cache) == 2 and teaching.cached(TINY) is not None


def test_a_writer_killed_mid_write_leaves_only_an_orphan_that_is_cleared(cache):
    """A writer killed hard leaves its temporary folder; it is never read as an entry and
    the next write removes it."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    orphan = teaching.cache_dir() / f".tmp-{teaching.cache_key(TINY)}-{dead.pid}"
    orphan.mkdir(parents=True)
    (orphan / "arrays.npz").write_bytes(b"PK\x03\x04 half a zip")
    assert teaching.cached(TINY) is None
    teaching.run(TINY, progress=False, data=discs(24, 32))
    assert len(cache) == 1 and not orphan.exists()
    assert [p.name for p in teaching.cache_dir().iterdir()] == [teaching.cache_key(TINY)]


def test_run_many_loads_each_dataset_once_and_keeps_order(cache, monkeypatch):
    loads = []

    def fake_resolve(config, progress=True):
        loads.append((config.seed, config.size))
        return discs(24, 32, seed=config.seed)

    monkeypatch.setattr(teaching, "resolve_data", fake_resolve)
    configs = [dataclasses.replace(TINY, strategy=s, seed=seed)
               for seed in (0, 1) for s in ("local", "centralized")]
    runs = teaching.run_many(configs, progress=False)
    assert [r.config for r in runs] == configs
    assert sorted(loads) == [(0, 32), (1, 32)], "a dataset was loaded more than once"
    assert len(cache) == 4
    teaching.run_many(configs, progress=False)
    assert len(cache) == 4 and len(loads) == 2, "a warm cache trained or loaded data"


def test_prepare_fills_the_cache_for_the_course_defaults(cache, monkeypatch):
    """prepare() trains every scenario run once (shared runs once) and writes the shown
    synthetic sets; a second prepare() trains nothing."""
    tiny = dataclasses.replace(TINY, n_images=12, size=32, rounds=1)
    scenarios = {"a": lambda: [tiny, dataclasses.replace(tiny, strategy="centralized")],
                 "b": lambda: [tiny]}  # shares a's first run
    monkeypatch.setattr(course, "SCENARIOS", scenarios)
    monkeypatch.setattr(course, "SHOWN_DATA", {"c": [("kvasir", 6, 3)]})
    assert teaching.prepare(progress=False) == 2
    assert len(cache) == 2
    assert (data_dir() / "synthetic" / "kvasir-n6-seed3" / "COMPLETE").is_file()
    assert teaching.prepare(progress=False) == 0 and len(cache) == 2
    assert teaching.prepare(["b"], progress=False) == 0


def test_prepare_rejects_an_unknown_scenario():
    with pytest.raises(ValueError, match="unknown scenario"):
        teaching.prepare(["99_nothing"], progress=False)


def _fake_run(strategy, seed, dice, partition="iid"):
    config = dataclasses.replace(TINY, strategy=strategy, seed=seed, partition=partition)
    history = History(config.to_dict(), [
        {"round": 0, "site": GLOBAL, "dice": 0.0, "iou": 0.0, "bytes_up": 0, "bytes_down": 0,
         "seconds": 1.0},
        {"round": 1, "site": GLOBAL, "dice": dice, "iou": dice / 2, "bytes_up": 0,
         "bytes_down": 0, "seconds": 1.0}])
    empty = np.zeros((0, 4, 4), np.uint8)
    return teaching.TeachingRun(config, history, np.zeros((0, 4, 4, 3), np.uint8), empty,
                                empty, np.zeros(0, np.int64), ["background", "polyp"])


def test_summary_gives_mean_and_sample_std_over_seeds():
    runs = [_fake_run("sflv2", 0, 0.5), _fake_run("local", 0, 0.2), _fake_run("sflv2", 1, 0.6),
            _fake_run("sflv2", 2, 0.7), _fake_run("local", 1, 0.4)]
    rows = teaching.summary(runs)
    assert [r["strategy"] for r in rows] == ["sflv2", "local"]
    s, loc = rows
    assert s["n"] == 3 and s["seeds"] == [0, 1, 2]
    assert s["dice_mean"] == pytest.approx(0.6) and s["dice_std"] == pytest.approx(0.1)
    assert (s["dice_min"], s["dice_max"]) == (0.5, 0.7)
    assert loc["dice_mean"] == pytest.approx(0.3)
    assert loc["dice_std"] == pytest.approx(np.std([0.2, 0.4], ddof=1))
    iou = teaching.summary(runs, metric="iou")
    assert iou[0]["iou_mean"] == pytest.approx(0.3)
    one = teaching.summary([_fake_run("fl", 0, 0.9)])
    assert one[0]["dice_std"] == 0.0


def test_summary_groups_by_several_fields_and_renders_markdown():
    runs = [_fake_run("sflv2", 0, 0.5, "iid"), _fake_run("sflv2", 1, 0.7, "iid"),
            _fake_run("sflv2", 0, 0.3, "label"), _fake_run("local", 0, 0.1, "label")]
    rows = teaching.summary(runs, by=("strategy", "partition"))
    assert [(r["strategy"], r["partition"], r["n"]) for r in rows] == [
        ("sflv2", "iid", 2), ("sflv2", "label", 1), ("local", "label", 1)]
    table = teaching.summary_table(rows)
    lines = table.splitlines()
    assert lines[0] == "| strategy | partition | Dice (mean ± std) | seeds |"
    assert lines[2] == "| sflv2 | iid | 0.600 ± 0.141 | 2 |"
    assert len(lines) == 2 + len(rows)
    assert table._repr_markdown_() == str(table)  # Jupyter renders it, not raw pipes
    assert json.loads(json.dumps(rows)) == rows  # plain values only
