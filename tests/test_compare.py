"""The comparison matrix: cells, skipping finished ones, the three result files, the CLI."""

import argparse
import csv
import json

import numpy as np
import pytest

from medseg_kit import compare
from medseg_kit.federated import RunConfig

from .synthetic import discs

STRATEGIES = ["centralized", "local", "sflv2"]




BASE = RunConfig(model="unet", width=4, size=32, sites=2, rounds=1, batch_size=4,
                 device="cpu")


@pytest.fixture
def counted(monkeypatch):
    """Count the cells trained and the datasets loaded."""
    calls = {"train": [], "load": []}
    real_train = compare.train

    def train(config, out, **kw):
        calls["train"].append((config.dataset, config.model, config.strategy, config.seed,
                               kw.get("resume")))
        return real_train(config, out, **kw)

    def load(config):
        calls["load"].append((config.dataset, config.seed))
        return discs(n=16, seed=config.seed, classes=3 if config.dataset == "blastocyst" else 2)

    monkeypatch.setattr(compare, "train", train)
    return calls, load


def test_matrix_writes_the_three_files_and_skips_finished_cells(tmp_path, counted):
    calls, load = counted
    out = tmp_path / "m"
    results = compare.run_matrix(["unet"], STRATEGIES, ["kvasir", "blastocyst"], 1, out,
                                 BASE, progress=False, load_data=load, worst=3)
    assert len(calls["train"]) == 6 and calls["load"] == [("kvasir", 0), ("blastocyst", 0)]
    assert [r["cell"] for r in results] == [f"{d}-unet-{s}-seed0" for d in
                                            ("kvasir", "blastocyst") for s in STRATEGIES]
    for r in results:
        assert (out / r["cell"] / "result.json").is_file()
        assert 0.0 <= r["iou"] <= r["dice"] <= 1.0
        assert len(r["site_results"]) == 2 and len(r["images"]) == r["n_images"]
        # the headline is the image-weighted mean of the sites' figures
        sites = r["site_results"]
        assert r["dice"] == pytest.approx(sum(s["dice"] * s["n_images"] for s in sites)
                                          / r["n_images"])
        assert (r["bytes_per_site_round"] > 0) == (r["strategy"] == "sflv2")
        if r["strategy"] != "local":  # one global model: the run loop's last pooled figures
            history = json.loads((out / r["cell"] / "history.json").read_text())
            last = [x for x in history["records"] if x["site"] == "all"][-1]
            assert (r["dice"], r["iou"]) == pytest.approx((last["dice"], last["iou"]))
    assert "dice/core" in results[-1] and "iou/disc" in results[0]

    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["dataset"], r["strategy"]) for r in rows] == [
        (d, s) for d in ("kvasir", "blastocyst") for s in STRATEGIES]
    saved = json.loads((out / "results.json").read_text())
    assert len(saved["cells"]) == 6 and len(saved["summary"]) == 6
    assert {(c["dataset"], c["strategy"]) for c in saved["ordering"]} == {
        ("kvasir", "sflv2"), ("blastocyst", "sflv2")}
    md = (out / "results.md").read_text()
    assert "| model | kvasir C | kvasir L | kvasir S | blastocyst C |" in md
    assert "## Dice (%)" in md and "C − S (IoU pts)" in md and "MB / site / round" in md
    cases = compare.load_worst_cases(out / results[0]["cell"])
    assert cases["images"].shape == (3, 32, 32, 3) and cases["preds"].shape == (3, 32, 32)
    assert np.all(np.diff(cases["dice"]) >= 0)  # worst first

    # run again: nothing is trained, nothing is loaded, the same results come back
    again = compare.run_matrix(["unet"], STRATEGIES, ["kvasir", "blastocyst"], 1, out, BASE,
                               progress=False, load_data=load, worst=3)
    assert len(calls["train"]) == 6 and len(calls["load"]) == 2
    assert [r["iou"] for r in again] == [r["iou"] for r in results]

    # an interrupted cell (checkpoint, no result) is resumed, and only it
    (out / "kvasir-unet-local-seed0" / "result.json").unlink()
    compare.run_matrix(["unet"], STRATEGIES, ["kvasir", "blastocyst"], 1, out, BASE,
                       progress=False, load_data=load, worst=3)
    assert calls["train"][6:] == [("kvasir", "unet", "local", 0, True)]
    assert calls["load"][2:] == [("kvasir", 0)]


def test_a_finished_cell_of_another_config_is_an_error(tmp_path, counted):
    _, load = counted
    compare.run_matrix(["unet"], ["centralized"], ["kvasir"], 1, tmp_path, BASE,
                       progress=False, load_data=load, worst=0)
    other = RunConfig(**{**BASE.to_dict(), "lr": 1e-2})
    with pytest.raises(ValueError, match=r"another configuration \(lr: 0.003 there"):
        compare.run_matrix(["unet"], ["centralized"], ["kvasir"], 1, tmp_path, other,
                           progress=False, load_data=load)
    # the device is not part of the experiment: the cell still counts as finished
    moved = RunConfig(**{**BASE.to_dict(), "strategy": "centralized", "device": "auto"})
    assert compare.finished_result(tmp_path / "kvasir-unet-centralized-seed0", moved)


def fake(dataset, model, strategy, seed, iou, mb=0.0):
    return {"cell": compare.cell_name(dataset, model, strategy, seed), "dataset": dataset,
            "model": model, "strategy": strategy, "seed": seed, "dice": iou + 0.1,
            "iou": iou, "precision": 0.5, "recall": 0.5, "bytes_per_site_round": mb * 1e6,
            "train_seconds": 1.0, "wall_seconds": 2.0, "params": 1000, "synthetic": True,
            "site_results": [{"site": 0, "iou": iou, "dice": iou}]}


def test_summary_ordering_and_tables_from_known_numbers():
    results = [fake("kvasir", "unet", "centralized", 0, 0.80),
               fake("kvasir", "unet", "centralized", 1, 0.82),
               fake("kvasir", "unet", "local", 0, 0.60),
               fake("kvasir", "unet", "local", 1, 0.60),
               fake("kvasir", "unet", "sflv2", 0, 0.78, mb=2.5),
               fake("kvasir", "unet", "sflv2", 1, 0.78, mb=2.5),
               fake("kvasir", "segnet", "centralized", 0, 0.70),
               fake("kvasir", "segnet", "local", 0, 0.72),
               fake("kvasir", "segnet", "sflv2", 0, 0.71)]
    summary = compare.summarize_cells(results)
    c = summary[0]
    assert c["iou"] == pytest.approx(0.81) and c["iou_std"] == pytest.approx(0.02 ** 0.5 / 10)
    checks = compare.ordering_checks(summary)
    unet, segnet = checks
    assert unet["c_minus_s"] == pytest.approx(3.0) and unet["s_minus_l"] == pytest.approx(18.0)
    assert unet["holds"] is True
    assert segnet["c_minus_s"] == pytest.approx(-1.0) and segnet["holds"] is False
    table = compare.metric_table(summary, "iou")
    assert "| unet | 81.0 ± 1.4 | 60.0 ± 0.0 | 78.0 ± 0.0 |" in table
    assert "| segnet | 70.0 | 72.0 | 71.0 |" in table  # one seed: no ± part
    md = compare.results_markdown(results, BASE, [0, 1])
    assert "holds in 1 of 2 comparisons" in md and "| 2.50 |" in md
    # several split strategies are named, not all called S
    assert compare.strategy_label("sflv1", ["centralized", "sflv1", "sflv2"]) == "sflv1"
    assert compare.strategy_label("sflv2", ["local", "sflv2"]) == "S"
    only = compare.ordering_checks(compare.summarize_cells(results[4:6]))
    assert only[0]["holds"] is None and only[0]["c_minus_s"] is None


def test_seeds_and_names_are_checked(tmp_path):
    assert compare.parse_seeds(2) == [0, 1] == compare.parse_seeds("2")
    assert compare.parse_seeds("0,3,7") == [0, 3, 7] == compare.parse_seeds([0, 3, 7])
    with pytest.raises(ValueError, match="seeds"):
        compare.parse_seeds(0)
    with pytest.raises(ValueError, match="unknown model"):
        compare.run_matrix(["unet", "nonet"], ["local"], ["kvasir"], 1, tmp_path, BASE)
    with pytest.raises(ValueError, match="unknown dataset"):
        compare.run_matrix(["unet"], ["local"], ["kvasir", "mnist"], 1, tmp_path, BASE)


def test_cli_compare_command_builds_the_matrix(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_matrix(models, strategies, datasets, seeds, out, base, **kw):
        seen.update(models=models, strategies=strategies, datasets=datasets, seeds=seeds,
                    base=base, **kw)
        return [fake("kvasir", "unet", s, 0, v) for s, v in
                (("centralized", 0.8), ("local", 0.6), ("sflv2", 0.7))]

    monkeypatch.setattr(compare, "run_matrix", fake_matrix)
    parser = argparse.ArgumentParser()
    compare.add_compare_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["compare", "--models", "unet,segnet", "--datasets",
                              "kvasir,ham10000", "--seeds", "2", "--out", str(tmp_path),
                              "--size", "48", "--rounds", "3", "--width", "paper",
                              "--device", "cpu", "--quiet"])
    assert args.func(args) == 0
    assert seen["models"] == ["unet", "segnet"] and seen["datasets"] == ["kvasir", "ham10000"]
    assert seen["strategies"] == STRATEGIES and seen["seeds"] == "2"
    assert (seen["base"].size, seen["base"].rounds, seen["base"].width) == (48, 3, "paper")
    assert seen["progress"] is False and seen["hd95"] is False
    assert "C ≥ S > L" in capsys.readouterr().out
    args = parser.parse_args(["compare", "--out", str(tmp_path), "--width", "12"])
    args.func(args)
    assert seen["base"].width == 12 and seen["models"] == ["unet"]
    args = parser.parse_args(["compare", "--out", str(tmp_path), "--width", "wide"])
    with pytest.raises(ValueError, match="--width"):
        args.func(args)
