import json

import pytest
import torch

from medseg_kit.federated import GLOBAL, RunConfig, train
from medseg_kit.federated.checkpoint import load_checkpoint, save_checkpoint
from medseg_kit.split import Split

from .synthetic import discs as disc_data


def cfg(**kw):
    base = dict(model="unet", width=4, size=32, sites=2, rounds=2, batch_size=4, lr=3e-3,
                seed=0, device="cpu")
    base.update(kw)
    return RunConfig(**base)


def test_sflv2_with_one_site_equals_centralized():
    data = disc_data()
    _, central = train(cfg(strategy="centralized", sites=1), data=data, progress=False)
    _, split = train(cfg(strategy="sflv2", sites=1), data=data, progress=False)
    a, b = central.run.net.state_dict(), split.run.net.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-5, rtol=1e-4), k
    # and training really moved the weights
    init = cfg(strategy="centralized", sites=1)
    from medseg_kit.federated.run import Run

    fresh = Run(init, data=data, progress=False).net.state_dict()
    assert any(not torch.allclose(fresh[k].float(), a[k].float()) for k in a)


@pytest.mark.parametrize("strategy", ["centralized", "local", "sflv2"])
def test_strategies_train_and_report(strategy):
    data = disc_data(n=40)
    h, _ = train(cfg(strategy=strategy, rounds=4, sites=2), data=data, progress=False)
    rows = h.rows(GLOBAL)
    assert len(rows) == 4
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    site_rows = [r for r in h.records if r["site"] != GLOBAL]
    assert {r["site"] for r in site_rows} == {0, 1}
    for r in h.records:
        assert 0.0 <= r["dice"] <= 1.0 and 0.0 <= r["iou"] <= r["dice"] + 1e-9
    sent = sum(r["bytes_up"] + r["bytes_down"] for r in site_rows)
    assert (sent > 0) == (strategy == "sflv2")


def test_sflv2_bytes_match_the_split_report():
    data = disc_data(n=40)
    config = cfg(strategy="sflv2", rounds=1, sites=2, batch_size=4, bn_calibration=3)
    h, strat = train(config, data=data, progress=False)
    split = Split(strat.run.net, *strat.run.net.default_cut)
    per_image = split.bytes_per_image(32)
    client = sum(t.numel() * t.element_size() for t in split.client_part().state_dict().values())
    for r in h.records:
        if r["site"] != GLOBAL:
            seen = r["n_train"] - (r["n_train"] % 4 == 1)  # a last batch of one is dropped
            # training steps, the client part each way, 3 calibration images' activations
            assert r["bytes_up"] == seen * per_image["up"] + client + 3 * per_image[
                "up_activations"]
            assert r["bytes_down"] == seen * per_image["down"] + client + 3 * per_image[
                "down_activations"]


def test_history_and_checkpoint_written_and_resume_matches(tmp_path):
    data = disc_data(n=30)
    full, s_full = train(cfg(strategy="sflv2", rounds=3), tmp_path / "full", data=data,
                         progress=False)
    saved = json.loads((tmp_path / "full" / "history.json").read_text())
    assert len([r for r in saved["records"] if r["site"] == GLOBAL]) == 3
    # stop after round 2 (rounds=2), then resume the same run to 3 rounds
    part_dir = tmp_path / "part"
    train(cfg(strategy="sflv2", rounds=2), part_dir, data=data, progress=False)
    resumed, s_res = train(cfg(strategy="sflv2", rounds=3), part_dir, data=data,
                           progress=False, resume=True)
    a, b = s_full.run.net.state_dict(), s_res.run.net.state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [r["dice"] for r in resumed.rows()] == [r["dice"] for r in full.rows()]


def test_resume_without_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        train(cfg(), tmp_path, data=disc_data(), progress=False, resume=True)


def test_bad_config_values_are_named():
    with pytest.raises(ValueError, match="strategy"):
        RunConfig(strategy="gossip")
    with pytest.raises(ValueError, match="rounds"):
        RunConfig(rounds=0)
    with pytest.raises(ValueError, match="sites"):
        train(cfg(sites=30), data=disc_data(n=20), progress=False)


def test_resume_refuses_another_config(tmp_path):
    data = disc_data()
    train(cfg(rounds=1), tmp_path, data=data, progress=False)
    with pytest.raises(ValueError, match="lr"):
        train(cfg(rounds=2, lr=1e-3), tmp_path, data=data, progress=False, resume=True)


def test_interrupted_checkpoint_write_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"round": 1, "w": torch.ones(3)})

    def broken_save(obj, f):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {"round": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    ck = load_checkpoint(path)
    assert ck["round"] == 1 and torch.equal(ck["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]
