import json
import subprocess
import sys

import pytest

from medseg_kit.cli import main

from .synthetic import discs as disc_data


@pytest.fixture
def tiny_data(monkeypatch):
    """Serve tiny in-memory data instead of synthesizing the default set."""
    import medseg_kit.federated.run as run_module

    monkeypatch.setattr(run_module, "resolve_data", lambda c, progress=True: disc_data(n=20))


def test_cut_lists_every_valid_cut(capsys):
    assert main(["cut", "--model", "unet", "--size", "64"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("(")]
    assert len(rows) == 36
    assert any(line.startswith("(1,8)") and "enc1 | dec2 | enc1" in line for line in rows)


def test_models_lists_the_ten(capsys):
    assert main(["models", "--size", "64"]) == 0
    out = capsys.readouterr().out
    names = ["unet", "segnet", "deeplabv3", "deeplabv3plus", "refinenet", "sunet", "cgnet",
             "ducknet", "attention_unet", "swin_unet"]
    rows = [line.split()[0] for line in out.splitlines()[1:] if line.strip()][:10]
    assert rows == names
    assert "31.04M (w=64)" in out  # the paper UNet


def test_invalid_model_is_named(capsys):
    assert main(["cut", "--model", "vnet"]) == 2
    assert "unknown model 'vnet'" in capsys.readouterr().err


def test_train_json_resume_and_refusal(tmp_path, capsys, tiny_data):
    out = tmp_path / "run"
    args = ["train", "--model", "unet", "--width", "4", "--size", "32", "--sites", "2",
            "--rounds", "1", "--batch-size", "4", "--device", "cpu", "--out", str(out)]
    assert main(args + ["--json"]) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["strategy"] == "sflv2" and 0 <= final["dice"] <= 1
    for name in ("history.json", "checkpoint.pt", "learning_curve.png", "config.json"):
        assert (out / name).is_file(), name
    # a second run into the same folder would overwrite it: refused
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    # resume and extend to two rounds
    assert main(["train", "--out", str(out), "--resume", "--rounds", "2", "--json"]) == 0
    history = json.loads((out / "history.json").read_text())
    assert [r["round"] for r in history["records"] if r["site"] == "all"] == [0, 1]


def test_console_script_runs():
    res = subprocess.run([sys.executable, "-m", "medseg_kit.cli", "--help"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "medseg-kit" in res.stdout


@pytest.mark.parametrize("model", ["unet", "segnet", "deeplabv3", "deeplabv3plus", "refinenet",
                                   "sunet", "cgnet", "ducknet", "attention_unet", "swin_unet"])
def test_every_model_trains_through_the_train_command(model, tmp_path, capsys, monkeypatch):
    import medseg_kit.federated.run as run_module

    monkeypatch.setattr(run_module, "resolve_data",
                        lambda c, progress=True: disc_data(n=12, size=64))
    args = ["train", "--model", model, "--width", "4", "--size", "64", "--sites", "2",
            "--rounds", "1", "--batch-size", "4", "--device", "cpu", "--json",
            "--out", str(tmp_path / model)]
    assert main(args) == 0
    final = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert final["model"] == model and final["bytes_per_site_round"] > 0
