"""Notebook 09's helpers (``medseg_kit.deployment``), without starting Flower: the roles
and ports, the recording that ships (it must agree with itself and with the protocol's
round-trip count), the raw-data check of logged messages, the memory watch, the live /
recorded decision, and that all of it works where Flower is not installed (Binder)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from medseg_kit import deployment as dep
from medseg_kit.federated.config import RunConfig
from medseg_kit.flower import FLOWER_DEMO

TINY = replace(FLOWER_DEMO, n_images=8, size=32, width=4, sites=2, rounds=1)


@pytest.fixture(scope="module")
def rec():
    return dep.load()


def test_roles_put_the_server_part_at_the_centre_and_no_port_at_a_hospital():
    rows = {r["component"]: r for r in dep.roles(FLOWER_DEMO)}
    assert list(rows) == ["SuperLink", "ServerApp", "SuperNode", "ClientApp"]
    assert "enc2 … dec2" in rows["ServerApp"]["computes"]
    assert "front (enc1)" in rows["ClientApp"]["computes"]
    assert "no inbound port" in rows["SuperNode"]["network"]
    assert str(dep.PORTS["superlink"]) in rows["SuperLink"]["network"]
    fig = dep.plot_deployment(FLOWER_DEMO)
    assert fig.axes
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_ports_are_flowers_own_defaults():
    pytest.importorskip("flwr")
    ports = dep.flower_ports()
    assert {k: ports[k] for k in dep.PORTS} == dep.PORTS
    assert {k: ports[k] for k in dep.LEGACY_PORTS} == dep.LEGACY_PORTS
    assert dep.flower_installed() == dep.FLOWER_VERSION


def test_the_recording_is_the_demo_and_agrees_with_itself(rec):
    assert rec["config"] == FLOWER_DEMO.to_dict(), "re-record: " + dep.RECORD_COMMAND
    sim, flower = dep.histories(rec)
    same = dep.agreement(sim, flower)
    assert same["bytes_equal"] and same["max_dice_diff"] <= 1e-6, same
    assert len(rec["exchanges"]) == dep.expected_exchanges(rec)
    msgs = rec["messages"]
    assert msgs["raw"] == 0 and msgs["check_works"] and msgs["full_resolution"] > 0
    kinds = {(c["message"], c["direction"]) for c in msgs["contents"]}
    assert {("train", "in"), ("train", "out"), ("evaluate", "in")} <= kinds
    carried = " ".join(r["carries"] for r in dep.crossings(rec))
    assert "activations `enc1`" in carried and "gradient `dec2`" in carried
    assert rec["memory"]["peak_pss_mib"] > 0 and rec["flower_wall"] > rec["simulation_wall"]
    assert "| sflv2 (Flower) |" in dep.results_table(rec)
    assert len(dep.rounds(rec)) == FLOWER_DEMO.rounds


def test_round_trips_follow_the_protocol():
    assert [dep._batches(n, 4) for n in (1, 2, 4, 5, 6, 9)] == [1, 1, 1, 1, 2, 2]
    assert dep._batches(13, 16) == 1
    c = replace(FLOWER_DEMO, batch_size=4)
    # per site: 2B + 1 for its turn, then calibrate and evaluate
    assert dep.exchanges_per_round(c, [13, 13, 12]) == (2 * 3 + 3) * 3
    assert dep.exchanges_per_round(FLOWER_DEMO, [13, 13, 12]) == 15


def test_the_raw_check_finds_an_image_and_passes_activations(tmp_path):
    from medseg_kit.data.base import read_cache
    from medseg_kit.flower.site import TRAIN_FILE, prepare_sites

    folders = prepare_sites(TINY, tmp_path / "sites")
    data = read_cache(folders[0] / TRAIN_FILE)
    image = data.images[0].astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    messages = tmp_path / "messages"
    messages.mkdir()
    np.savez(messages / "00001-train-site0-in.npz",
             enc1=np.random.default_rng(0).random((2, 4, 32, 32), dtype=np.float32))
    np.savez(messages / "00002-hello-site-1-out.npz")
    clean = dep.raw_in_messages(messages, tmp_path / "sites")
    assert (clean["messages"], clean["raw"], clean["full_resolution"]) == (2, 0, 1)
    assert clean["check_works"]
    np.savez(messages / "00003-train-site0-in.npz", enc1=image)
    leak = dep.raw_in_messages(messages, tmp_path / "sites")
    assert leak["raw"] == 1


def test_memory_watch_counts_the_processes_it_starts():
    code = "import time; x = bytearray(300 << 20); time.sleep(1.5)"
    with dep.MemoryWatch(interval=0.05) as watch:
        subprocess.run([sys.executable, "-c", code], check=True)
    s = watch.summary()
    assert s["peak_processes"] >= 2 and s["peak_pss_mib"] >= 300, s
    assert any(k.startswith("other") and v >= 290 for k, v in s["by_role"].items()), s


def test_decide(rec, monkeypatch):
    demo = RunConfig.from_dict(rec["config"])
    monkeypatch.setattr(dep, "flower_installed", lambda: None)
    live, why = dep.decide(None, rec, demo)
    assert not live and "not installed" in why
    assert dep.decide(None, rec, TINY)[0] is False  # falls back to the recording
    with pytest.raises(RuntimeError, match="needs Flower"):
        dep.decide(True, rec, demo)
    monkeypatch.setattr(dep, "flower_installed", lambda: "1.42.0")
    assert dep.decide(None, rec, TINY) == (True, "these parameters differ from the "
                                                 "recorded run's")
    fits = rec["memory"]["peak_pss_mib"] < 2048 and rec["flower_wall"] < 180
    assert dep.decide(None, rec, demo)[0] is fits
    assert dep.decide(False, rec, TINY)[0] is False


def test_the_notebook_side_works_without_flower():
    """Binder has no Flower: everything notebook 09 calls on a recording still works."""
    code = """
import sys
sys.modules["flwr"] = None  # import flwr now raises ImportError
from medseg_kit import deployment as dep
from medseg_kit.flower import FLOWER_DEMO
rec = dep.load()
assert dep.flower_installed() is None and dep.flower_ports() is None
live, why = dep.decide(None, rec, FLOWER_DEMO)
assert not live and "not installed" in why, why
dep.roles(FLOWER_DEMO); dep.crossings(rec); dep.results_table(rec); dep.memory_rows(rec)
dep.plot_deployment(FLOWER_DEMO); dep.plot_rounds(rec); dep.plot_exchanges(rec)
print("ok")
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={"MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
                              "PATH": "/usr/bin:/bin"})
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-3000:]


def test_the_recording_is_small_json():
    size = dep.RECORDING.stat().st_size
    assert size < 100_000, size
    json.loads(dep.RECORDING.read_text())


@pytest.mark.slow
def test_record_runs_the_demo_live_on_one_site(tmp_path):
    """The notebook's live path: a SuperLink and one SuperNode, one round, measured."""
    pytest.importorskip("flwr")
    config = replace(TINY, sites=1)
    rec = dep.record(tmp_path / "run", config)
    sim, flower = dep.histories(rec)
    same = dep.agreement(sim, flower)
    assert same["bytes_equal"] and same["max_dice_diff"] <= 1e-6, same
    assert len(rec["exchanges"]) == dep.expected_exchanges(rec) == 1 + 3 + 2
    assert rec["messages"]["raw"] == 0 and rec["messages"]["full_resolution"] > 0
    roles = rec["memory"]["by_role"]
    assert {"SuperLink", "SuperNode", "ServerApp", "ClientApp"} <= set(roles), roles
    saved = dep.load(dep.save(rec, tmp_path / "rec.json"))
    assert saved["exchanges"] == rec["exchanges"] and "out" not in saved
