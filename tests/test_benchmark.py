"""``medseg-kit bench``: the tables and the JSON are produced with the expected rows and
columns. Timings are never asserted (the machine is shared)."""

import argparse
import json

import pytest
import torch

from medseg_kit.benchmark import BenchSettings, PlainLoop, add_bench_command, to_markdown
from medseg_kit.benchmark.cli import settings_from_args
from medseg_kit.benchmark.notebooks import course_rows
from medseg_kit.benchmark.passes import Contender, missing_fields
from medseg_kit.benchmark.suite import CPU_MODELS, check_targets
from medseg_kit.benchmark.timing import interleave, paired_ratio
from medseg_kit.data import SegData
from medseg_kit.federated import RunConfig


def _parser():
    parser = argparse.ArgumentParser(prog="medseg-kit")
    add_bench_command(parser.add_subparsers(dest="command", required=True))
    return parser


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDSEG_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def test_quick_bench_writes_the_tables_and_json(data_dir, capsys):
    out = data_dir / "bench"
    args = _parser().parse_args(["bench", "--quick", "--out", str(out), "--profile",
                                 "--variants", "fp32,bf16-cl", "--quiet"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    md = (out / "bench.md").read_text()
    assert printed.strip() == md.strip()
    result = json.loads((out / "bench.json").read_text())
    assert result["command"].startswith("medseg-kit bench --models unet --size 32")
    for key in ("cpu", "cores", "torch", "torch_threads", "device", "gpu"):
        assert key in result["machine"]
    fp32 = {r["run"] for r in result["runs"] if r["variant"] == "fp32"}
    assert fp32 == {"plain", "centralized", "sflv2@1", "sflv2@5", "sflv1@1", "sflv1@5"}
    for r in result["runs"]:
        assert r["images"] == 10 and r["wall_s"]["median"] > 0 and r["img_per_s"] > 0
    ratios = {(r["variant"], r["run"], r["reference"]) for r in result["ratios"]}
    assert ("fp32", "centralized", "plain") in ratios
    assert {("fp32", f"{s}@{n}", "centralized") for s in ("sflv2", "sflv1")
            for n in (1, 5)} <= ratios
    assert ("bf16-cl", "plain", "plain fp32") in ratios  # the plain loop always runs it
    assert {(t["run"], t["limit"]) for t in result["targets"]} == {("sflv2@5", 1.05),
                                                                   ("sflv1@5", 1.10)}
    assert result["data_cache"]["cache_on_s"]["median"] > 0
    assert result["profile"]["run"] == "sflv2@5" and result["profile"]["by_time"]
    if missing_fields("bf16-cl"):  # before RunConfig has precision: said, not hidden
        assert any("bf16-cl" in n for n in result["notes"])
    else:
        assert ("bf16-cl", "sflv2@5", "centralized") in ratios
    for heading in ("### Ratios", "| model | width | variant | centralized / plain | "
                    "sflv2, 1 site / centralized | sflv2, 5 sites / centralized",
                    "### Seconds per pass", "### Targets", "### Data cache",
                    "### Where the time goes", "Machine: "):
        assert heading in md


def test_flags_and_defaults():
    p = _parser()
    s = settings_from_args(p.parse_args(["bench"]))
    assert (s.models, s.width, s.size, s.batch_size, s.images, s.sites) == (
        ("unet",), None, 128, 8, 200, (1, 5))
    s = settings_from_args(p.parse_args(["bench", "--paper"]))
    assert s.width == "paper" and s.size == 256 and len(s.models) == 10
    s = settings_from_args(p.parse_args(["bench", "--models", "cpu", "--quick",
                                         "--images", "20"]))
    assert s.models == CPU_MODELS and s.images == 20 and s.size == 32 and s.repeats == 1
    assert "--images 20" in s.command() and "--models unet,segnet" in s.command()
    with pytest.raises(ValueError, match="unknown model"):
        BenchSettings(models=("nope",))
    with pytest.raises(ValueError, match="centralized and the plain loop"):
        BenchSettings(strategies=("centralized",))
    with pytest.raises(ValueError, match="2 training images"):
        BenchSettings(images=6, sites=(1, 5))
    with pytest.raises(ValueError, match="unknown variant"):
        BenchSettings(variants=("fp8",))


def test_interleave_rotates_and_pairs():
    order = []
    contenders = [Contender(k, k, "m", "fp32", k, 1, 1, lambda i, k=k: order.append((i, k)))
                  for k in "abc"]
    times = interleave(contenders, repeats=2, warmup=1, sync=lambda: None, progress=False)
    assert [k for _, k in order] == list("abc" "bca" "cab")
    assert all(len(t["wall"]) == 2 and len(t["cpu"]) == 2 for t in times.values())
    assert paired_ratio([2.0, 4.0, 9.0], [1.0, 2.0, 3.0]) == 2.0


def test_targets_say_whether_they_hold():
    ratios = [{"model": "unet", "variant": "fp32", "run": "sflv2@5",
               "reference": "centralized", "wall": 1.02, "cpu": 1.0},
              {"model": "unet", "variant": "fp32", "run": "sflv1@5",
               "reference": "centralized", "wall": 1.2, "cpu": 1.15},
              {"model": "unet", "variant": "fp32", "run": "centralized",
               "reference": "plain", "wall": 1.1, "cpu": 1.1}]
    cpu = {t["run"]: t["holds"] for t in check_targets(ratios, "cpu")}
    assert cpu == {"sflv2@5": True, "sflv1@5": False}
    ratios[1]["cpu"] = 1.05  # the CPU clock meets it: on a CPU, that counts
    assert [t["holds"] for t in check_targets(ratios, "cpu")] == [True, True]
    gpu = {t["run"]: (t["holds"], round(t["measured_wall"], 3))
           for t in check_targets(ratios, "cuda")}
    assert gpu == {"sflv2@5": (True, 0.98), "sflv1@5": (False, 0.833),
                   "centralized": (False, 0.909)}


def test_plain_loop_trains():
    rng = torch.Generator().manual_seed(0)
    images = torch.randint(0, 255, (6, 32, 32, 3), generator=rng, dtype=torch.uint8).numpy()
    masks = (torch.rand(6, 32, 32, generator=rng) > 0.5).to(torch.uint8).numpy()
    data = SegData("t", images, masks, ("background", "fg"))
    loop = PlainLoop(RunConfig(size=32, batch_size=4), data, 3, 1, torch.device("cpu"), {})
    before = [p.detach().clone() for p in loop.net.parameters()]
    loop(0)  # 6 images: one batch of 4, one of 2
    assert any(not torch.equal(a, b) for a, b in zip(before, loop.net.parameters()))


def test_course_report_rows():
    report = {"results": {"warm": [{"notebook": "00_quickstart", "ok": True, "wall_s": 12.8,
                                    "cpu_s": 6.2, "kernel_peak_rss_mib": 451,
                                    "max_process_rss_mib": 300, "error": None}]}}
    assert course_rows(report) == [{"cache": "warm", "notebook": "00_quickstart", "ok": True,
                                    "wall_s": 12.8, "cpu_s": 6.2, "peak_rss_mib": 451,
                                    "error": None}]


def test_markdown_of_an_empty_result_names_the_notes():
    result = {"settings": {"width": None, "images": 8, "size": 32, "batch_size": 4,
                           "seed": 0, "repeats": 1, "warmup": 1, "quick": True,
                           "strategies": ["sflv2"], "sites": [1], "variants": ["compile"]},
              "machine": {"cpu": "x", "cores": 2, "usable_cores": 2, "gpu": None,
                          "torch": "2", "torch_threads": 1, "python": "3", "os": "L",
                          "device": "cpu", "load_average": [0.0, 0, 0]},
              "command": "medseg-kit bench", "runs": [], "ratios": [], "targets": [],
              "data_cache": None, "profile": None, "notebooks": None,
              "notes": ["variant compile: skipped"]}
    md = to_markdown(result)
    assert "### Notes" in md and "variant compile: skipped" in md
    assert "### Ratios" not in md


def test_a_run_cut_short_keeps_the_models_already_measured(data_dir, monkeypatch):
    """After each model bench.json holds what is measured so far: a run stopped by a time
    limit (here: the second model fails) keeps the first model's rows."""
    from medseg_kit.benchmark import suite

    real = suite._bench_model
    calls = []

    def second_fails(s, model, *args):
        calls.append(model)
        if len(calls) == 2:
            raise KeyboardInterrupt  # what a time limit's signal amounts to
        return real(s, model, *args)

    monkeypatch.setattr(suite, "_bench_model", second_fails)
    out = data_dir / "bench"
    settings = suite.quick_settings(models=("unet", "segnet"), sites=(2,),
                                    strategies=("sflv2",), data_cache=False)
    with pytest.raises(KeyboardInterrupt):
        suite.run_bench(settings, out=out, progress=False)
    result = json.loads((out / "bench.json").read_text())
    assert calls == ["unet", "segnet"]
    assert {r["model"] for r in result["runs"]} == {"unet"}
    assert {r["run"] for r in result["runs"]} == {"plain", "centralized", "sflv2@2"}
    assert "| unet |" in (out / "bench.md").read_text()
