"""Fuzzing a run folder: random damage to ``config.json`` and ``checkpoint.pt`` never ends
``train --resume`` in a traceback. It resumes (the damage did not matter), or it exits 2
with one line that names the run's folder or file, and the files are left as they were."""

import json
import shutil

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import medseg_kit.federated.run as run_module
from medseg_kit.cli import main

from .synthetic import discs as disc_data

ARGS = ["--model", "unet", "--width", "4", "--size", "32", "--sites", "2", "--rounds", "2",
        "--batch-size", "4", "--device", "cpu", "--strategy", "fl"]
SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# small values only: a damaged "rounds" must not make the fuzz train for long
VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                   st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.text(max_size=6), st.lists(st.integers(-2, 4), max_size=3),
                   st.dictionaries(st.text(max_size=3), st.integers(0, 2), max_size=2))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished two-round run, copied for every example."""
    mp = pytest.MonkeyPatch()
    mp.setattr(run_module, "resolve_data", lambda c, progress=True: disc_data(n=16))
    out = tmp_path_factory.mktemp("fuzz") / "run"
    assert main(["train", *ARGS, "--out", str(out), "--json"]) == 0
    yield out, mp
    mp.undo()


def resume(finished, tmp_path_factory, damage) -> None:
    src, _ = finished
    run = tmp_path_factory.mktemp("case") / "run"
    shutil.copytree(src, run)
    damage(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.MonkeyPatch.context() as mp:
        errors = []
        mp.setattr("sys.stderr", _Capture(errors))
        mp.setattr("sys.stdout", _Capture([]))
        code = main(["train", "--out", str(run), "--resume", "--json"])
    err = "".join(errors)
    assert "Traceback" not in err
    assert code in (0, 2), err
    if code == 2:
        lines = [x for x in err.splitlines() if x.startswith("error:")]
        assert len(lines) == 1 and str(run) in lines[0], err
        after = {p.name: p.read_bytes() for p in run.iterdir()}
        assert after == before  # a refused resume writes nothing


class _Capture:
    def __init__(self, sink):
        self.sink = sink

    def write(self, text):
        self.sink.append(text)
        return len(text)

    def flush(self):
        pass


@SETTINGS
@given(cut=st.integers(0, 2000), junk=st.binary(max_size=40))
def test_a_truncated_or_garbled_config(finished, tmp_path_factory, cut, junk):
    def damage(run):
        text = (run / "config.json").read_bytes()
        (run / "config.json").write_bytes(text[:cut] + junk)
    resume(finished, tmp_path_factory, damage)


@SETTINGS
@given(key=st.sampled_from(["model", "strategy", "size", "sites", "rounds", "batch_size",
                            "lr", "cut", "dropout_schedule", "seed", "device", "partition",
                            "codec", "width", "unknown"]),
       value=VALUES, drop=st.booleans())
def test_a_config_value_replaced_or_removed(finished, tmp_path_factory, key, value, drop):
    def damage(run):
        d = json.loads((run / "config.json").read_text())
        if drop:
            d.pop(key, None)
        else:
            d[key] = value
        (run / "config.json").write_text(json.dumps(d))
    resume(finished, tmp_path_factory, damage)


@SETTINGS
@given(cut=st.integers(0, 400_000), flips=st.lists(st.integers(0, 400_000), max_size=4))
def test_a_truncated_or_bit_flipped_checkpoint(finished, tmp_path_factory, cut, flips):
    def damage(run):
        data = bytearray((run / "checkpoint.pt").read_bytes())
        for i in flips:
            data[i % len(data)] ^= 0xFF
        (run / "checkpoint.pt").write_bytes(bytes(data[:max(cut, 1)]))
    resume(finished, tmp_path_factory, damage)


@SETTINGS
@given(key=st.sampled_from(["config", "round", "strategy", "history", "rng"]),
       value=VALUES, drop=st.booleans())
def test_a_checkpoint_entry_replaced_or_removed(finished, tmp_path_factory, key, value, drop):
    def damage(run):
        ck = torch.load(run / "checkpoint.pt", weights_only=True)
        if drop:
            ck.pop(key)
        else:
            ck[key] = value
        torch.save(ck, run / "checkpoint.pt")
    resume(finished, tmp_path_factory, damage)
