"""The comparison matrix: cells, skipping finished ones, the three result files, the CLI."""

import argparse
import csv
import json

import numpy as np
import pytest

from medseg_kit import comparison, metrics, report, teaching
from medseg_kit.comparison import cli, runner
from medseg_kit.federated import RunConfig
from medseg_kit.federated.run import GLOBAL, History
from medseg_kit.units import MIB

from .synthetic import discs

STRATEGIES = ["centralized", "local", "sflv2"]

BASE = RunConfig(model="unet", width=4, size=32, sites=2, rounds=1, batch_size=4,
                 device="cpu")


@pytest.fixture
def counted(monkeypatch):
    """Count the cells trained and the datasets loaded."""
    calls = {"train": [], "load": []}
    real_train = runner.train

    def train(config, out, **kw):
        calls["train"].append((config.dataset, config.model, config.strategy, config.seed,
                               kw.get("resume")))
        return real_train(config, out, **kw)

    def load(config):
        calls["load"].append((config.dataset, config.seed))
        return discs(n=16, seed=config.seed, classes=3 if config.dataset == "blastocyst" else 2)

    monkeypatch.setattr(runner, "train", train)
    return calls, load


def test_matrix_writes_the_three_files_and_skips_finished_cells(tmp_path, counted):
    calls, load = counted
    out = tmp_path / "m"
    results = comparison.run_matrix(["unet"], STRATEGIES, ["kvasir", "blastocyst"], 1, out,
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
    assert "## Dice (%)" in md and "C − S (IoU pts)" in md and "MiB / site / round" in md
    cases = comparison.load_worst_cases(out / results[0]["cell"])
    assert cases["images"].shape == (3, 32, 32, 3) and cases["preds"].shape == (3, 32, 32)
    assert np.all(np.diff(cases["dice"]) >= 0)  # worst first

    # run again: nothing is trained, nothing is loaded, the same results come back
    again = comparison.run_matrix(["unet"], STRATEGIES, ["kvasir", "blastocyst"], 1, out, BASE,
                                  progress=False, load_data=load, worst=3)
    assert len(calls["train"]) == 6 and len(calls["load"]) == 2
    assert [r["iou"] for r in again] == [r["iou"] for r in results]

    # an interrupted cell (checkpoint, no result) is resumed, and only it
    (out / "kvasir-unet-local-seed0" / "result.json").unlink()
    comparison.run_matrix(["unet"], STRATEGIES, ["kvasir", "blastocyst"], 1, out, BASE,
                          progress=False, load_data=load, worst=3)
    assert calls["train"][6:] == [("kvasir", "unet", "local", 0, True)]
    assert calls["load"][2:] == [("kvasir", 0)]


def test_a_finished_cell_of_another_config_is_an_error(tmp_path, counted):
    _, load = counted
    comparison.run_matrix(["unet"], ["centralized"], ["kvasir"], 1, tmp_path, BASE,
                          progress=False, load_data=load, worst=0)
    other = RunConfig(**{**BASE.to_dict(), "lr": 1e-2})
    with pytest.raises(ValueError, match=r"another configuration \(lr: 0.003 there"):
        comparison.run_matrix(["unet"], ["centralized"], ["kvasir"], 1, tmp_path, other,
                              progress=False, load_data=load)
    # the device is not part of the experiment: the cell still counts as finished
    moved = RunConfig(**{**BASE.to_dict(), "strategy": "centralized", "device": "auto"})
    assert comparison.finished_result(tmp_path / "kvasir-unet-centralized-seed0", moved)


def fake(dataset, model, strategy, seed, iou, mb=0.0):
    return {"cell": comparison.cell_name(dataset, model, strategy, seed), "dataset": dataset,
            "model": model, "strategy": strategy, "seed": seed, "dice": iou + 0.1,
            "iou": iou, "precision": 0.5, "recall": 0.5, "bytes_per_site_round": mb * MIB,
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
    summary = comparison.summarize_cells(results)
    c = summary[0]
    assert c["iou"] == pytest.approx(0.81) and c["iou_std"] == pytest.approx(0.02 ** 0.5 / 10)
    checks = comparison.ordering_checks(summary)
    unet, segnet = checks
    assert unet["c_minus_s"] == pytest.approx(3.0) and unet["s_minus_l"] == pytest.approx(18.0)
    assert unet["holds"] is True
    assert segnet["c_minus_s"] == pytest.approx(-1.0) and segnet["holds"] is False
    table = comparison.metric_table(summary, "iou")
    assert "| unet | 81.0 ± 1.4 | 60.0 ± 0.0 | 78.0 ± 0.0 |" in table
    assert "| segnet | 70.0 | 72.0 | 71.0 |" in table  # one seed: no ± part
    md = comparison.results_markdown(results, BASE, [0, 1])
    assert "holds in 1 of 2 comparisons" in md and "| 2.50 |" in md
    # several split strategies are named, not all called S
    assert comparison.strategy_label("sflv1", ["centralized", "sflv1", "sflv2"]) == "sflv1"
    assert comparison.strategy_label("sflv2", ["local", "sflv2"]) == "S"
    only = comparison.ordering_checks(comparison.summarize_cells(results[4:6]))
    assert only[0]["holds"] is None and only[0]["c_minus_s"] is None


def test_seeds_and_names_are_checked(tmp_path):
    assert comparison.parse_seeds(2) == [0, 1] == comparison.parse_seeds("2")
    assert comparison.parse_seeds("0,3,7") == [0, 3, 7] == comparison.parse_seeds([0, 3, 7])
    with pytest.raises(ValueError, match="seeds"):
        comparison.parse_seeds(0)
    with pytest.raises(ValueError, match="unknown model"):
        comparison.run_matrix(["unet", "nonet"], ["local"], ["kvasir"], 1, tmp_path, BASE)
    with pytest.raises(ValueError, match="unknown dataset"):
        comparison.run_matrix(["unet"], ["local"], ["kvasir", "mnist"], 1, tmp_path, BASE)


def test_cli_compare_command_builds_the_matrix(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_matrix(models, strategies, datasets, seeds, out, base, **kw):
        seen.update(models=models, strategies=strategies, datasets=datasets, seeds=seeds,
                    base=base, **kw)
        return [fake("kvasir", "unet", s, 0, v) for s, v in
                (("centralized", 0.8), ("local", 0.6), ("sflv2", 0.7))]

    monkeypatch.setattr(cli, "run_matrix", fake_matrix)
    parser = argparse.ArgumentParser()
    comparison.add_compare_command(parser.add_subparsers(dest="command"))
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
    capsys.readouterr()
    with pytest.raises(SystemExit):  # argparse's one-line usage error, exit 2
        parser.parse_args(["compare", "--out", str(tmp_path), "--width", "wide"])
    assert "argument --width: expected an integer, 'teaching' or 'paper'; got 'wide'" in \
        capsys.readouterr().err


def test_a_teaching_run_scores_like_a_trained_cell(tmp_path, monkeypatch):
    """evaluate_run on a cached run gives the numbers run_cell computes from the model."""
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path / "cache"))
    data = discs(n=20, seed=1)
    config = RunConfig(**{**BASE.to_dict(), "strategy": "local", "dataset": "kvasir"})
    name = comparison.cell_name("kvasir", "unet", "local", 0)
    cell = comparison.run_cell(config, tmp_path / name, data, hd95=True, worst=2)
    run = teaching.run(config, progress=False, data=data)
    got = comparison.evaluate_run(run, hd95=True)
    for k in ("dice", "iou", "precision", "recall", "hd95", "dice/disc", "n_images"):
        assert got[k] == pytest.approx(cell[k]), k
    assert [s["dice"] for s in got["site_results"]] == pytest.approx(
        [s["dice"] for s in cell["site_results"]])
    assert got["cell"] == cell["cell"] and got["bytes_per_site_round"] == 0.0
    cases = comparison.worst_cases(run, 2, got)
    assert list(cases["dice"]) == pytest.approx(sorted(r["dice"] for r in got["images"])[:2])
    i = int(cases["ids"][0])
    assert np.array_equal(cases["preds"][0], run.predictions[i])
    fig = report.plot_worst_cases(cases, title="worst")
    assert len(fig.axes) == 6
    fig = report.plot_outline_grid(run.images[:2], run.truths[:2],
                                   {"local": run.predictions[:2]}, run.class_names)
    assert [ax.get_title() for ax in fig.axes[2::3]] == [
        f"local: Dice {im['dice']:.2f}" for im in got["images"][:2]]


def _run(strategy, seed, finals, partition="iid", sites=((0.5, 10), (0.7, 30)), split="ushaped",
         up=100, down=50):
    """A hand-made teaching run: pooled Dice per round ``finals``, per-site final Dice."""
    config = RunConfig(strategy=strategy, seed=seed, partition=partition, split=split,
                       rounds=len(finals), device="cpu")
    records = []
    for r, d in enumerate(finals):
        for i, (sd, n) in enumerate(sites):
            records.append({"round": r, "site": i, "dice": sd, "train_loss": 1.0 - d,
                            "bytes_up": up * (i + 1), "bytes_down": down * (i + 1),
                            "n_train": n})
        records.append({"round": r, "site": GLOBAL, "dice": d, "train_loss": 1.0 - d,
                        "bytes_up": 3 * up, "bytes_down": 3 * down, "seconds": 1.0})
    empty = np.zeros((1, 4, 4), np.uint8)
    return teaching.TeachingRun(config, History(config.to_dict(), records),
                                np.zeros((1, 4, 4, 3), np.uint8), empty, empty,
                                np.zeros(1, np.int64), ["background", "polyp"])


def test_curves_gaps_sites_and_wire_from_teaching_runs():
    runs = [_run("local", 0, [0.2, 0.4]), _run("local", 1, [0.4, 0.6]),
            _run("sflv2", 0, [0.3, 0.7], sites=((0.6, 10), (0.9, 30))),
            _run("sflv2", 1, [0.5, 0.7]),
            _run("local", 0, [0.1, 0.5], partition="label"),
            _run("sflv2", 0, [0.2, 0.45], partition="label")]
    curves = comparison.mean_curves(runs[:4], by="strategy", metrics=("dice",))
    assert [r["dice"] for r in curves["local"]] == pytest.approx([0.3, 0.5])
    assert curves["local"][1]["dice_std"] == pytest.approx(np.std([0.4, 0.6], ddof=1))
    assert curves["sflv2"][0]["n"] == 2

    gaps = comparison.paired_gaps(runs, "sflv2", "local", by="partition")
    assert [g["partition"] for g in gaps] == ["iid", "label"]
    assert gaps[0]["gap_values"] == pytest.approx([30.0, 10.0]) and gaps[0]["seeds"] == [0, 1]
    assert gaps[1]["gap_mean"] == pytest.approx(-5.0) and gaps[1]["gap_std"] == 0.0
    assert len(report.plot_gaps(gaps, threshold=5).axes) == 1

    sites = comparison.site_rows(runs[:4], by="strategy")
    sflv2 = {r["site"]: r for r in sites if r["strategy"] == "sflv2"}
    assert sflv2[0]["dice_mean"] == pytest.approx(0.55) and sflv2[1]["n_train"] == 30
    assert sflv2[1]["dice_std"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert len(report.plot_site_bars(sites, panel="strategy", series="strategy").axes) == 2
    table = comparison.site_rows_table(sites, "dice")
    assert "| strategy | site 0 | site 1 |" in table
    assert "| sflv2 | 55.0 ± 7.1 | 80.0 ± 14.1 |" in table
    assert "| local | 10 | 30 |" in comparison.site_rows_table(sites, "n_train")
    one = comparison.site_rows(runs[2:3], by="strategy")
    assert "| sflv2 | 60.0 | 90.0 |" in comparison.site_rows_table(one, "dice")

    wire = comparison.wire_rows({"u": runs[2], "v": _run("sflv2", 0, [0.5], split="vanilla")})
    assert wire[0]["bytes_up"] == pytest.approx(150) and wire[0]["bytes_down"] == 75
    assert (wire[0]["labels_sent"], wire[1]["labels_sent"]) == (False, True)
    assert "| v | 0.500 | 150 B | 75 B | **yes** |" in comparison.wire_table(wire)


def test_metrics_of_a_known_prediction_through_evaluate_run():
    """Two images at two sites: one perfect, one shifted by 3 px (Dice 0.7)."""
    truth = np.zeros((2, 24, 24), np.uint8)
    truth[:, 5:15, 4:14] = 1
    pred = truth.copy()
    pred[1] = np.roll(truth[1], 3, axis=1)
    config = RunConfig(strategy="sflv2", rounds=1, device="cpu")
    rec = {"round": 0, "site": GLOBAL, "dice": 0.85, "train_loss": 0.1, "bytes_up": 0,
           "bytes_down": 0, "seconds": 1.0}
    run = teaching.TeachingRun(config, History(config.to_dict(), [rec]),
                               np.zeros((2, 24, 24, 3), np.uint8), truth, pred,
                               np.array([0, 1]), ["background", "polyp"])
    r = comparison.evaluate_run(run, hd95=True)
    assert r["dice"] == pytest.approx(0.85) and r["iou"] == pytest.approx((1 + 70 / 130) / 2)
    assert [s["dice"] for s in r["site_results"]] == pytest.approx([1.0, 0.7])
    assert r["hd95"] == pytest.approx(1.5)
    assert r["dice"] == pytest.approx(metrics.evaluate_predictions(pred, truth, 2)["dice"])
