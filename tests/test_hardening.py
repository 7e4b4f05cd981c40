"""Bad input to ``medseg-kit train`` and to resuming: every case ends in one clear line
(exit 2, or 3 when training never happened) naming the value or file, or in the right
behaviour; nothing already written is lost; a checkpoint can never run code."""

import json
import os

import pytest
import torch

import medseg_kit.federated.run as run_module
from medseg_kit.cli import main
from medseg_kit.comparison import run_cell
from medseg_kit.federated import RunConfig, train

from .synthetic import discs as disc_data

TINY = ["--model", "unet", "--width", "4", "--size", "32", "--sites", "2", "--rounds", "1",
        "--batch-size", "4", "--device", "cpu"]


@pytest.fixture
def loads(monkeypatch):
    """Tiny in-memory data instead of the default set; records every load."""
    calls = []

    def fake(c, progress=True):
        calls.append(c)
        return disc_data(n=20)

    monkeypatch.setattr(run_module, "resolve_data", fake)
    return calls


def train_cli(capsys, *args):
    code = main(["train", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.startswith("error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def finished(tmp_path, capsys, loads):
    """A finished two-round run in ``tmp/run``."""
    out = tmp_path / "run"
    code, _, _ = train_cli(capsys, *TINY[:-6], "--rounds", "2", "--batch-size", "4",
                           "--device", "cpu", "--out", out, "--json")
    assert code == 0
    return out


@pytest.mark.parametrize("size", [65, 8])
def test_a_size_the_model_refuses_is_named_before_any_work(tmp_path, capsys, loads, size):
    args = [a if a != "32" else str(size) for a in TINY]
    code, _, err = train_cli(capsys, *args, "--out", tmp_path / "r")
    assert code == 2
    assert f"got {size}" in error_line(err) and "unet" in err
    assert loads == [] and not (tmp_path / "r").exists()


def test_batch_size_one_is_refused(tmp_path, capsys, loads):
    code, _, err = train_cli(capsys, *TINY[:-4], "--batch-size", "1", "--device", "cpu",
                             "--out", tmp_path / "r")
    assert code == 2 and "batch_size must be an integer >= 2" in error_line(err)
    assert loads == []


def test_resume_refuses_flags_that_contradict_the_run(finished, capsys):
    code, _, err = train_cli(capsys, "--out", finished, "--resume", "--rounds", "3",
                             "--lr", "0.1", "--model", "segnet", "--sites", "2")
    line = error_line(err)
    assert code == 2
    assert "--lr 0.1" in line and "--model 'segnet'" in line and "--sites" not in line
    assert json.loads((finished / "config.json").read_text())["rounds"] == 2


def test_resume_extends_and_says_so(finished, capsys):
    code, _, err = train_cli(capsys, "--out", finished, "--resume", "--rounds", "3", "--json")
    assert code == 0 and "rounds 2 -> 3" in err
    history = json.loads((finished / "history.json").read_text())
    assert history["config"]["rounds"] == 3
    assert json.loads((finished / "config.json").read_text())["rounds"] == 3
    assert [r["round"] for r in history["records"] if r["site"] == "all"] == [0, 1, 2]


def test_resume_refuses_to_shrink_a_run(finished, capsys):
    before = (finished / "checkpoint.pt").read_bytes()
    code, _, err = train_cli(capsys, "--out", finished, "--resume", "--rounds", "1")
    assert code == 2 and "finished 2 rounds" in error_line(err)
    assert json.loads((finished / "config.json").read_text())["rounds"] == 2
    assert (finished / "checkpoint.pt").read_bytes() == before


def test_a_damaged_config_is_named(finished, capsys):
    (finished / "config.json").write_text('{"model": "unet", oops')
    code, _, err = train_cli(capsys, "--out", finished, "--resume", "--rounds", "3")
    assert code == 2 and str(finished / "config.json") in error_line(err)


def test_a_foreign_checkpoint_is_named(finished, capsys):
    torch.save({"state_dict": {"w": torch.ones(2)}}, finished / "checkpoint.pt")
    code, _, err = train_cli(capsys, "--out", finished, "--resume", "--rounds", "3")
    line = error_line(err)
    assert code == 2 and "not a medseg_kit checkpoint" in line
    assert str(finished / "checkpoint.pt") in line


def test_out_naming_a_file_is_refused(tmp_path, capsys, loads):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    code, _, err = train_cli(capsys, *TINY, "--out", target)
    assert code == 2 and "is a file" in error_line(err)
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("wire", [{"noise_std": 0.3}, {"loss_up": 0.2, "loss_down": 0.1}])
def test_resume_is_bit_identical_with_a_noisy_lossy_wire(tmp_path, wire):
    data = disc_data(n=24)
    c = dict(model="unet", width=4, size=32, sites=2, batch_size=4, device="cpu", **wire)
    _, full = train(RunConfig(rounds=3, **c), tmp_path / "full", data=data, progress=False)
    train(RunConfig(rounds=1, **c), tmp_path / "part", data=data, progress=False)
    _, resumed = train(RunConfig(rounds=3, **c), tmp_path / "part", data=data, progress=False,
                       resume=True)
    a, b = full.run.net.state_dict(), resumed.run.net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


class Payload:
    """Unpickling this creates a file: the proof that a checkpoint ran code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_malicious_checkpoint_is_refused_and_runs_nothing(finished, capsys, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"config": {}, "round": 0, "strategy": Payload(marker), "history": "",
                "rng": {}}, finished / "checkpoint.pt")
    code, _, err = train_cli(capsys, "--out", finished, "--resume", "--rounds", "3")
    assert code == 2 and "refused" in error_line(err)
    assert not marker.exists()


def test_compare_refuses_a_malicious_checkpoint_in_a_cell(tmp_path):
    marker = tmp_path / "pwned"
    cell = tmp_path / "cell"
    cell.mkdir()
    torch.save({"payload": Payload(marker)}, cell / "checkpoint.pt")
    config = RunConfig(model="unet", width=4, size=32, sites=2, rounds=1, batch_size=4,
                       device="cpu")
    with pytest.raises(ValueError, match="refused"):
        run_cell(config, cell, disc_data(n=20))
    assert not marker.exists()


def test_every_update_rejected_shows_events_and_fails(tmp_path, capsys, loads):
    out = tmp_path / "r"
    code, _, err = train_cli(capsys, *TINY, "--rounds", "2", "--lr", "1e6", "--out", out)
    assert code == 3
    assert "round 0: update(s) of site(s)" in err  # live, above the progress bar
    assert "faults: 4 update(s) rejected" in err
    assert "never trained" in error_line(err)
    text = (out / "history.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in history.json"))
    assert '"train_loss": null' in text


def test_stale_temporaries_are_cleaned_and_a_failed_start_leaves_nothing(finished, capsys,
                                                                        tmp_path):
    stale = finished / ".checkpoint.pt.x1y2.tmp"
    stale.write_bytes(b"")
    assert train_cli(capsys, "--out", finished, "--resume", "--rounds", "3")[0] == 0
    assert not stale.exists()
    out = tmp_path / "failed"
    code, _, err = train_cli(capsys, *TINY[:-6], "--sites", "30", "--device", "cpu",
                             "--out", out)
    assert code == 2 and "30 sites" in error_line(err)
    assert not (out / "config.json").exists()
