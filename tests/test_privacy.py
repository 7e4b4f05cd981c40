"""The privacy measurements: the inversion attack, label inference, the defense sweep, the
tables, the files and ``medseg-kit privacy``, on tiny fixed-seed setups (one thread)."""

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from medseg_kit import privacy
from medseg_kit.federated import RunConfig
from medseg_kit.models import create_model
from medseg_kit.privacy import sweep as sweep_module
from medseg_kit.split import CutError, RawDataError, Split

from .synthetic import discs

STEPS = 40  # decoder steps: enough to order the cuts on 32 px discs


@pytest.fixture(scope="module")
def images():
    """The server's own images (seed 1) and the site's images and masks (seed 2)."""
    aux = discs(24, 32, seed=1)
    site = discs(8, 32, seed=2)
    x, y = site.batch(np.arange(len(site)))
    return aux.batch(np.arange(len(aux)))[0], x, y


@pytest.fixture
def unet():
    torch.manual_seed(0)
    return create_model("unet", in_channels=3, num_classes=1, width=4)


# ------------------------------------------------------------------ the cut
def test_depth_cut_sends_the_fewest_tensors(unet):
    assert [privacy.depth_cut(unet, f) for f in (1, 2, 3, 4)] == [(1, 9), (2, 8), (3, 7),
                                                                    (4, 6)]
    for f in (1, 2, 3, 4):
        assert Split(unet, *privacy.depth_cut(unet, f)).up == [f"enc{f}"]


def test_raw_fronts_are_refused_unless_allowed():
    cgnet = create_model("cgnet", width="teaching")
    assert privacy.attackable_fronts(cgnet) == [4, 5]
    assert privacy.attackable_fronts(cgnet, allow_raw=True) == [1, 2, 3, 4, 5]
    with pytest.raises(RawDataError):
        privacy.depth_cut(cgnet, 2)
    assert Split(cgnet, *privacy.depth_cut(cgnet, 2, allow_raw=True), allow_raw=True).raw_up
    with pytest.raises(CutError):
        privacy.depth_cut(cgnet, 9)


# ----------------------------------------------------------- the inversion
def test_shallower_cut_reconstructs_better_and_deterministically(unet, images):
    aux, x, _ = images
    res = {f: privacy.inversion_attack(unet, privacy.depth_cut(unet, f), aux, x, steps=STEPS)
           for f in (1, 4)}
    assert res[1].ssim > res[4].ssim + 0.05, (res[1].ssim, res[4].ssim)
    assert res[1].psnr > res[4].psnr
    assert res[1].ssim > res[1].baseline_ssim + 0.1  # far better than a blind guess
    again = privacy.inversion_attack(unet, (1, 9), aux, x, steps=STEPS)
    assert again.ssim == res[1].ssim and np.array_equal(again.reconstructions,
                                                        res[1].reconstructions)
    assert res[1].reconstructions.shape == res[1].originals.shape == (8, 32, 32, 3)
    assert res[1].reconstructions.dtype == np.uint8 and len(res[1].ssim_per_image) == 8


@pytest.mark.parametrize("noise", ["gaussian", "laplace"])
def test_noise_lowers_the_attacks_ssim(unet, images, noise):
    aux, x, _ = images
    clean = privacy.inversion_attack(unet, (1, 9), aux, x, steps=STEPS)
    noisy = privacy.inversion_attack(unet, (1, 9), aux, x, steps=STEPS, noise_std=1.0,
                                     noise=noise)
    assert noisy.ssim < clean.ssim - 0.1, (clean.ssim, noisy.ssim)
    assert noisy.noise_std == 1.0 and noisy.row()["noise"] == noise


def test_the_wire_codec_is_applied(unet, images):
    aux, x, y = images
    plain = privacy.inversion_attack(unet, (1, 9), aux, x, steps=2)
    coded = privacy.inversion_attack(unet, (1, 9), aux, x, steps=2, codec="int8")
    assert coded.ssim != plain.ssim
    assert privacy.label_inference(unet, (1, 10), x, y, codec="fp16").dice == 1.0
    with pytest.raises(ValueError, match="codec"):
        privacy.make_wire(codec="zip")


def test_the_image_itself_needs_no_decoder(images):
    aux, x, _ = images
    cgnet = create_model("cgnet", width="teaching")
    res = privacy.inversion_attack(cgnet, (2, 3), aux, x, steps=1, allow_raw=True)
    assert "x" in res.up and res.raw and res.ssim == pytest.approx(1.0)
    assert np.isinf(res.psnr)
    with pytest.raises(RawDataError):
        privacy.inversion_attack(cgnet, (2, 3), aux, x, steps=1)


def test_scores_of_identical_and_constant_images():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ssim, psnr = privacy.image_scores(x, x)
    assert np.allclose(ssim, 1) and np.isinf(psnr).all()
    ssim, psnr = privacy.image_scores(x, torch.full_like(x, 0.5))
    assert (ssim < 0.2).all() and (psnr < 15).all()


# ------------------------------------------------------------- the labels
def test_label_inference_beats_the_trivial_guess_in_the_ushaped_split(unet, images):
    _, x, y = images
    res = privacy.label_inference(unet, unet.default_cut, x, y)
    assert res.received == ["dec2"] and not res.vanilla
    all_fg = privacy.mask_dice(np.ones_like(res.truths), res.truths).mean()
    empty = privacy.mask_dice(np.zeros_like(res.truths), res.truths).mean()
    assert res.baseline_dice == pytest.approx(all_fg)
    assert res.dice > max(all_fg, empty) + 0.3, (res.dice, all_fg, empty)
    assert res.inferred.shape == res.truths.shape == (8, 32, 32)
    again = privacy.label_inference(unet, unet.default_cut, x, y)
    assert np.array_equal(again.inferred, res.inferred)
    top = privacy.label_inference(unet, unet.default_cut, x, y, method="top", top=0.2)
    assert top.inferred.mean() == pytest.approx(0.2, abs=0.02)


def test_the_vanilla_split_hands_the_masks_over(unet, images):
    _, x, y = images
    res = privacy.label_inference(unet, (1, len(unet)), x, y)
    assert res.vanilla and res.received == ["label"]
    assert res.dice == 1.0 and (res.dice_per_image == 1).all()


def test_label_inference_leaves_the_network_alone(unet, images):
    _, x, y = images
    before = {k: v.clone() for k, v in unet.state_dict().items()}
    privacy.label_inference(unet, unet.default_cut, x, y)
    assert all(torch.equal(before[k], v) for k, v in unet.state_dict().items())


def test_thresholds_refuse_bad_input():
    maps = torch.rand(2, 8, 8)
    with pytest.raises(ValueError, match="threshold must be one of"):
        privacy.threshold_masks(maps, "mean")
    with pytest.raises(ValueError, match="top must be a share"):
        privacy.threshold_masks(maps, "top", top=1.5)
    with pytest.raises(ValueError, match="no gradient"):
        privacy.gradient_map({}, 8)


# --------------------------------------------------------------- the sweep
TINY = RunConfig(model="unet", width=4, size=32, n_images=20, sites=2, rounds=1,
                 batch_size=4, bn_calibration=4, device="cpu")


@pytest.fixture
def tiny(monkeypatch, images):
    """Tiny in-memory data for the runs, and the discs as the server's images."""
    aux = images[0]
    monkeypatch.setattr(sweep_module, "resolve_data", lambda c, progress=True: discs(n=20))
    monkeypatch.setattr(sweep_module, "aux_images", lambda *a, **k: aux)
    privacy.clear_trained()
    yield
    privacy.clear_trained()


def _sweep(**kw):
    kw = {"fronts": [1, 3], "n_targets": 6, "steps": 20, "progress": False, **kw}
    return privacy.privacy_sweep(TINY, **kw)


def test_sweep_is_deterministic_and_complete(tiny):
    steps = []
    res = _sweep(defense="noise", strengths=[0, 1.0], on_step=steps.append)
    assert res.trained_cut == (1, 8)
    assert [(r["strength"], r["front"]) for r in res.rows] == [(0.0, 1), (0.0, 3), (1.0, 1),
                                                              (1.0, 3)]
    assert {(r["strength"], r["split"], r["when"]) for r in res.label_rows} == {
        (0.0, "ushaped", "trained"), (0.0, "ushaped", "start"), (0.0, "vanilla", "trained"),
        (1.0, "ushaped", "trained")}
    assert res.label(0.0, "vanilla")["dice"] == 1.0
    assert res.at(1.0)["ssim"] < res.at(0.0)["ssim"]
    assert res.images.shape == (6, 32, 32, 3) and len(steps) == 2 + 4 + 4
    privacy.clear_trained()
    again = _sweep(defense="noise", strengths=[0, 1.0])
    assert again.rows == res.rows and again.label_rows == res.label_rows


def test_sweep_keeps_trained_runs_and_refuses_raw_fronts(tiny, monkeypatch):
    calls = []
    real = sweep_module.train
    monkeypatch.setattr(sweep_module, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    _sweep(fronts=[1], labels=False)
    _sweep(fronts=[1], defense="nopeek", strengths=[0.0, 0.5], labels=False)
    assert len(calls) == 2  # strength 0 was trained once
    res = privacy.privacy_sweep(replace(TINY, model="cgnet"),
                                fronts=[1, 4], n_targets=4, steps=5, labels=False,
                                progress=False)
    refused, ok = res.rows
    assert refused["refused"] and np.isnan(refused["ssim"]) and not ok["refused"]


@pytest.mark.parametrize("kw, message", [
    ({"defense": "blur"}, "defense must be one of none, noise, nopeek; got 'blur'"),
    ({"defense": "noise", "strengths": [-1]}, "a strength must be a number >= 0; got -1"),
    ({"defense": "noise", "strengths": ["a"]}, "a strength must be a number >= 0; got 'a'"),
    ({"defense": "none", "strengths": [0.5]}, "defense 'none' has only strength 0"),
    ({"fronts": [9]}, "front 9 is not a cut depth of unet"),
])
def test_sweep_rejects_bad_input_in_one_line(tiny, kw, message):
    with pytest.raises(ValueError) as err:
        _sweep(**kw)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_sweep_needs_a_split():
    with pytest.raises(ValueError, match="does not split the network"):
        privacy.privacy_sweep(RunConfig(strategy="fl", size=32, n_images=20), progress=False)


# ------------------------------------------------------- tables and files
def test_tables_plots_and_files(tiny, tmp_path):
    res = _sweep(defense="nopeek", strengths=[0, 0.5])
    table = privacy.cut_table(res.rows)
    assert "| unet | 1 | (1, 9) | none | enc1 |" in table and "NoPeek λ=0.5" in table
    assert "guess: the mean auxiliary image" in table
    assert "| unet | vanilla | (1, 10) | label |" in privacy.label_table(res.label_rows)
    trade = privacy.tradeoff_rows(res)
    assert [r["strength"] for r in trade] == [0.0, 0.5] and "test Dice" in \
        privacy.tradeoff_table(trade)
    with pytest.raises(ValueError, match="1 row labels for 4 attacks"):
        privacy.plot_reconstructions(list(res.attacks.values()), row_labels=["a"])
    for fig in (privacy.plot_tradeoff(trade),
                privacy.plot_reconstructions(list(res.attacks.values()), 3),
                privacy.plot_label_inference(list(res.labels.values())[:2], res.images)):
        assert fig.axes
    written = privacy.write_results(tmp_path / "out", [res], config=TINY.to_dict())
    names = {p.name for p in written}
    assert set(privacy.report.FILES) <= names and "tradeoff.png" in names
    assert "labels_unet.png" in names and "reconstructions_unet_nopeek_0.5.png" in names
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(doc["attacks"]) == 4 and doc["config"]["model"] == "unet"
    assert not list((tmp_path / "out").glob(".*.tmp"))


def test_explorer_switches_model_and_depth(images, unet):
    aux, x, _ = images
    attacks = [privacy.inversion_attack(unet, privacy.depth_cut(unet, f), aux, x, steps=2)
               for f in (1, 2)]
    ex = privacy.ReconstructionExplorer(attacks, n_images=2)
    first = ex.picture.value
    ex.show("unet", 2)
    assert ex.attack.front == 2 and ex.picture.value != first and "enc2" in ex.info.value
    assert ex.last_redraw_s > 0


# ------------------------------------------------------------------- CLI
def _cli(argv):
    parser = argparse.ArgumentParser(prog="medseg-kit")
    privacy.add_privacy_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_its_files(tiny, tmp_path, capsys):
    out = tmp_path / "privacy"
    assert _cli(["privacy", "--model", "unet", "--width", "4", "--size", "32", "--rounds", "1",
                 "--sites", "2", "--cuts", "1,2", "--defense", "noise", "--strength", "0,1",
                 "--steps", "5", "--targets", "4", "--out", str(out), "--quiet"]) == 0
    for name in privacy.report.FILES + ("tradeoff.png", "labels_unet.png"):
        assert (out / name).is_file(), name
    text = capsys.readouterr().out
    assert "| unet | 2 | (2, 8) |" in text and "noise σ (gaussian)" in text


@pytest.mark.parametrize("argv, message", [
    (["--model", "resnet"], "unknown model 'resnet'"),
    (["--cuts", "1,x"], "--cuts wants comma-separated integers such as 1,2,3; got '1,x'"),
    (["--cuts", "12"], "front 12 is not a cut depth of unet"),
    (["--defense", "blur"], "--defense must be one of none, noise, nopeek; got 'blur'"),
    (["--defense", "noise", "--strength", "0,-2"], "a strength must be a number >= 0"),
    (["--defense", "noise", "--strength", "a"], "--strength wants comma-separated numbers"),
    (["--noise", "uniform"], "--noise must be one of gaussian, laplace; got 'uniform'"),
    (["--steps", "0"], "--steps must be an integer >= 1; got 0"),
    (["--size", "30"], "30"),
])
def test_cli_rejects_bad_input_in_one_line(tiny, tmp_path, argv, message):
    with pytest.raises(ValueError) as err:
        _cli(["privacy", "--out", str(tmp_path / "o"), "--quiet", "--rounds", "1", *argv])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_file_as_out(tiny, tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        _cli(["privacy", "--out", str(f), "--quiet"])
