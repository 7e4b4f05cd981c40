"""The demo: every strategy per seed, a mean ± std table, and the margins behind its lesson."""

import json
from dataclasses import replace

import numpy as np
import pytest

from medseg_kit import demo
from medseg_kit.cli import main
from tests.synthetic import discs


@pytest.fixture(autouse=True)
def _discs(monkeypatch):
    """Tiny disc images stand in for the synthetic polyps (seconds to make)."""
    monkeypatch.setattr(demo, "resolve_data", lambda c, progress=True: discs(16, 32, c.seed))


TINY = replace(demo.DEMO, n_images=16, size=32, width=4, sites=2, rounds=1, device="cpu")


def test_summarize_and_margins_on_known_results():
    results = [{"strategy": s, "seed": k, "dice": d, "iou": d / 2,
                "bytes_per_site_round": b, "total_seconds": 2.0}
               for s, b, ds in (("centralized", 0, (0.9, 0.8, 0.7)),
                                ("local", 0, (0.5, 0.6, 0.8)),
                                ("sflv2", 3 * 2 ** 20, (0.85, 0.75, 0.7)))
               for k, d in enumerate(ds)]
    rows = demo.summarize(results)
    assert [r["strategy"] for r in rows] == list(demo.DEMO_STRATEGIES)
    c = rows[0]
    assert c["dice_mean"] == pytest.approx(0.8) and c["dice_std"] == pytest.approx(0.1)
    assert c["iou_mean"] == pytest.approx(0.4) and c["dice_values"] == [0.9, 0.8, 0.7]
    assert rows[2]["mib_per_site_round"] == pytest.approx(3.0)
    m = demo.margins(results)
    assert m["centralized_minus_sflv2"] == pytest.approx([0.05, 0.05, 0.0])
    assert m["sflv2_minus_local"] == pytest.approx([0.35, 0.15, -0.1])
    assert m["worst_lead"] == pytest.approx(-0.1) and m["worst_gap"] == pytest.approx(0.05)
    assert "not ahead of local in every seed" in demo.lesson(m)
    table = demo.results_table(rows).splitlines()
    assert "MiB / site / round" in table[0] and "MB" not in table[0].replace("MiB", "")
    assert table[2].startswith("| centralized | 0.800 ± 0.100 | 0.400 ± 0.050 | "
                               "0.900 / 0.800 / 0.700 | 0.0 |")
    assert table[4].split("|")[5].strip() == "3.0"


def test_run_demo_trains_every_strategy_per_seed_and_writes_its_outputs(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "out"
    report = demo.run_demo(out, TINY, seeds=(0, 1), progress=False)
    assert sorted((r["strategy"], r["seed"]) for r in report["runs"]) == sorted(
        (s, k) for s in demo.DEMO_STRATEGIES for k in (0, 1))
    for row in report["summary"]:
        dice = [r["dice"] for r in report["runs"] if r["strategy"] == row["strategy"]]
        assert row["dice_mean"] == pytest.approx(np.mean(dice))
        assert row["dice_std"] == pytest.approx(np.std(dice, ddof=1))
    for name in ("learning_curves.png", "predictions.png", "split.png", "results.md"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "seed1" / "sflv2" / "history.json").is_file()
    saved = json.loads((out / "results.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["setting"]["size"] == 32
    assert "mean ± std over seeds [0, 1]" in (out / "results.md").read_text()


def test_demo_command_prints_the_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(demo, "DEMO", TINY)
    rc = main(["demo", "--out", str(tmp_path / "o"), "--seed-list", "3", "--rounds", "1",
               "--partition", "quantity"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| strategy | Dice (mean ± std)" in text and "seeds [3]" in text
    assert "quantity skew" in text and "2 sites" in text
    assert json.loads((tmp_path / "o" / "results.json").read_text())["seeds"] == [3]
