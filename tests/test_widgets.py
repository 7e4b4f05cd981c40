"""The widgets, driven headless: set sliders, click buttons, read the readouts.

Each widget only wires controls to pure functions; these tests check that the readouts
show what those functions (``Split``, ``metrics``, ``Link``, ``make_sites``) say, that
moving a control changes them, and that the pure functions behind them are right.
"""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

pytest.importorskip("ipywidgets")

from medseg_kit import metrics  # noqa: E402
from medseg_kit.data import SegData  # noqa: E402
from medseg_kit.federated import RunConfig, train  # noqa: E402
from medseg_kit.federated.checkpoint import load_checkpoint  # noqa: E402
from medseg_kit.link import Link  # noqa: E402
from medseg_kit.models import create_model  # noqa: E402
from medseg_kit.models.summary import count_flops, count_params, stage_flops  # noqa: E402
from medseg_kit.split import (  # noqa: E402
    RawDataError,
    Split,
    activations,
    cut_report,
    stage_owners,
    valid_cuts,
)
from medseg_kit.traffic import price_round  # noqa: E402
from medseg_kit.widgets import (  # noqa: E402
    CutExplorer,
    MaskComparer,
    SiteExplorer,
    TrainingMonitor,
)
from medseg_kit.widgets.masks import worst_first  # noqa: E402

from .synthetic import discs  # noqa: E402


# ------------------------------------------------------------ pure functions
@pytest.fixture(scope="module")
def unet():
    return create_model("unet", width=4)


def test_stage_owners_and_flops_add_up(unet):
    assert stage_owners(4, 1, 3) == ["front", "server", "server", "back"]
    per_stage = stage_flops(unet, 32)
    assert len(per_stage) == len(unet) and all(f > 0 for f in per_stage)
    assert sum(per_stage) == count_flops(unet, 32)
    # parameter-free pooling stages cost nothing
    assert stage_flops(create_model("cgnet"), 32)[:2] == [0, 0]


@pytest.mark.parametrize("cut", [(1, 9), (2, 8), (4, 6), (3, 10)])
def test_cut_report_agrees_with_split(unet, cut):
    flops = stage_flops(unet, 32)
    rep = cut_report(unet, *cut, 32, stage_flops=flops)
    split = Split(unet, *cut)
    b = split.bytes_per_image(32)
    assert (rep["bytes_up"], rep["bytes_down"], rep["bytes"]) == (b["up"], b["down"], b)
    assert [c["name"] for c in rep["up"]] == split.up + (["label"] if cut[1] == 10 else [])
    assert [c["name"] for c in rep["down"]] == split.down and rep["kept"] == split.kept
    assert rep["params_site"] + rep["params_server"] == count_params(unet)
    assert (rep["params_site"], rep["params_server"]) == split.param_share()
    assert rep["flops_site"] + rep["flops_server"] == count_flops(unet, 32)
    assert rep["flops_server"] == sum(flops[cut[0]:cut[1]])
    assert rep["refused"] is None and rep["labels_to_server"] == (cut[1] == 10)


def test_a_round_on_the_link(unet):
    link = Link(10, 40, latency_ms=2)
    rep = price_round(unet, (2, 8), 32, link, images_per_site=20, batch_size=8,
                      bn_calibration=4)
    split = Split(unet, 2, 8)
    b = split.bytes_per_image(32)
    part = sum(t.numel() * t.element_size() for t in split.client_part().state_dict().values())
    assert rep["bytes_round_up"] == 20 * b["up"] + part + 4 * b["up_activations"]
    assert rep["bytes_round_down"] == 20 * b["down"] + part + 4 * b["down_activations"]
    assert rep["messages"] == 4 * 3 + 2 + 2  # 3 batches, the client part, calibration
    assert rep["seconds_per_round"] == pytest.approx(
        link.seconds(rep["bytes_round_up"], rep["bytes_round_down"], rep["messages"]))


def test_cut_report_carries_the_raw_data_refusal():
    net = create_model("cgnet")
    raw_cut = next((1, b) for b in range(2, len(net)) if (1, b) not in valid_cuts(net))
    with pytest.raises(RawDataError) as err:
        Split(net, *raw_cut)
    rep = cut_report(net, *raw_cut, 32)
    assert rep["refused"] == str(err.value)
    assert rep["raw"] == Split(net, *raw_cut, allow_raw=True).raw_up != []
    assert rep["bytes_up"] == Split(net, *raw_cut, allow_raw=True).bytes_per_image(32)["up"]


def test_activations_are_the_whole_forward_pass(unet):
    img = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    acts = activations(unet, img)
    assert set(acts) == {"x"} | {t for s in unet.specs for t in s.outputs}
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255
    unet.eval()
    with torch.no_grad():
        torch.testing.assert_close(acts["logits"], unet(x)[0])
    specs = unet.tensor_specs(32)
    assert all(tuple(acts[k].shape) == specs[k][0] for k in acts)


# ----------------------------------------------------------------- CutExplorer
@pytest.fixture(scope="module")
def explorer():
    return CutExplorer(create_model("unet", width=4), 32, images_per_site=10, link_mbps=20.0)


@pytest.mark.parametrize("cut", [(1, 9), (2, 8), (3, 6), (4, 10)])
def test_cut_readout_shows_what_split_reports(explorer, cut):
    before = (explorer.diagram.value, explorer.smashed.value)
    explorer.set_cut(*cut)
    assert explorer.cut.value == cut
    b = Split(explorer.net, *cut).bytes_per_image(32)
    rep = explorer.report
    assert (rep["bytes_up"], rep["bytes_down"]) == (b["up"], b["down"])
    assert f"{b['up']:,} B" in explorer.readout.value
    assert f"{b['down']:,} B" in explorer.readout.value
    assert f"cut ({cut[0]}, {cut[1]})" in explorer.readout.value
    for c in Split(explorer.net, *cut).crossings(32):
        assert f"<code>{c.name}</code>" in explorer.readout.value
    if cut != (1, 9):  # the first case may be the cut it was already at
        assert explorer.diagram.value != before[0]
        assert explorer.smashed.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_moving_the_cut_reruns_nothing(explorer, monkeypatch):
    calls = []
    real = explorer.net.run
    monkeypatch.setattr(explorer.net, "run", lambda *a, **k: calls.append(1) or real(*a, **k))
    for cut in [(1, 8), (2, 7), (3, 9), (1, 9)]:
        explorer.set_cut(*cut)
    assert calls == []


def test_invalid_cut_gives_a_message_not_a_traceback(explorer):
    explorer.set_cut(2, 8)
    diagram = explorer.diagram.value
    explorer.set_cut(5, 5)  # both handles on one stage
    assert "Not a valid cut" in explorer.readout.value and "1 &lt;= front" in explorer.readout.value
    assert "error" in explorer.report and explorer.diagram.value == diagram


def test_link_controls_change_the_time(explorer):
    explorer.set_cut(2, 8)
    explorer.mbps.value = 10.0
    explorer.images.value = 10
    t10 = explorer.report["seconds_per_round"]
    rep = explorer.report
    assert t10 == pytest.approx(Link(10, 10).seconds(rep["bytes_round_up"],
                                                     rep["bytes_round_down"]))
    assert f"{t10:.2f} s" in explorer.readout.value
    explorer.mbps.value = 100.0
    assert explorer.report["seconds_per_round"] == pytest.approx(t10 / 10)
    assert f"{t10 / 10:.2f} s" in explorer.readout.value


def test_raw_cut_of_cgnet_shows_the_refusal():
    ex = CutExplorer("cgnet", 32)
    assert "Refused" not in ex.readout.value  # the default cut is fine
    ex.set_cut(1, 6)
    assert "Refused by Split" in ex.readout.value and "RawDataError" in ex.readout.value
    assert "raw image data" in ex.readout.value
    assert ex.report["refused"].startswith("cut (front=1, back=6) sends raw image data")


def test_cut_explorer_css_classes(explorer):
    assert "medseg-cut-explorer" in explorer.widget._dom_classes
    assert "medseg-cut-slider" in explorer.cut._dom_classes
    assert "medseg-cut-readout" in explorer.readout._dom_classes
    assert explorer.cut.description == "cut"
    assert "application/vnd.jupyter.widget-view+json" in explorer._repr_mimebundle_()


# ---------------------------------------------------------------- MaskComparer
@pytest.fixture()
def masks():
    data = discs(n=5, size=24, seed=1, classes=3)
    good = data.masks.astype(int).copy()
    bad = good.copy()
    bad[3] = 0  # image 3 missed entirely by run "b"
    bad[1] = np.roll(bad[1], 3, axis=1)
    return data, {"a": good, "b": bad}


def test_mask_dice_is_the_metrics_dice(masks):
    data, preds = masks
    mc = MaskComparer(data.images, data.masks, preds, list(data.class_names))
    for label, p in preds.items():
        dice, _ = metrics.dice_iou(torch.as_tensor(p), torch.as_tensor(data.masks).long(), 3)
        np.testing.assert_allclose(mc.dice[label], dice[:, 1:].mean(1))
    assert mc.dice["a"].tolist() == [1.0] * 5 and mc.dice["b"][3] == 0.0
    assert f"b <b>{mc.dice['b'][0]:.3f}</b>" in mc.readout.value


def test_sort_worst_puts_the_lowest_dice_first_and_buttons_step(masks):
    data, preds = masks
    mc = MaskComparer(data.images, data.masks, preds, list(data.class_names))
    assert mc.shown == 0
    first = mc.picture.value
    mc.next_button.click()
    assert mc.shown == 1 and mc.index.value == 1 and mc.picture.value != first
    assert "test image #1" in mc.readout.value
    mc.prev_button.click()
    mc.prev_button.click()  # wraps around
    assert mc.shown == 4
    mc.sort_worst.value = True
    mean = (mc.dice["a"] + mc.dice["b"]) / 2
    assert mc.shown == 3 == int(np.argmin(mean)) and mc.index.value == 0
    assert "worst first" in mc.readout.value and "b <b>0.000</b>" in mc.readout.value
    assert list(mc.order) == list(np.argsort(mean, kind="stable"))
    assert np.all(np.diff(mean[mc.order]) >= 0)
    mc.next()
    assert mc.shown == mc.order[1]
    mc.sort_worst.value = False
    assert mc.shown == 0


def test_worst_first_is_stable():
    assert worst_first({"a": np.array([1.0, 0.5, 0.5, 0.2])}).tolist() == [3, 1, 2, 0]


def test_from_runs_duck_types_teaching_runs(masks):
    data, preds = masks
    runs = {k: SimpleNamespace(images=data.images, truths=data.masks, predictions=p,
                               class_names=list(data.class_names)) for k, p in preds.items()}
    mc = MaskComparer.from_runs(runs)
    assert list(mc.dice) == ["a", "b"] and mc.class_names == list(data.class_names)
    assert "medseg-mask-next" in mc.next_button._dom_classes
    assert "medseg-mask-readout" in mc.readout._dom_classes
    other = dict(runs, c=SimpleNamespace(images=data.images, truths=data.masks[::-1],
                                         predictions=preds["a"], class_names=None))
    with pytest.raises(ValueError, match="other images"):
        MaskComparer.from_runs(other)


# ---------------------------------------------------------------- SiteExplorer
@pytest.fixture(scope="module")
def site_data():
    ham = discs(n=24, size=16, seed=2)
    ham.meta = [{"id": str(i), "dx": ("nv", "mel", "bkl")[i % 3]} for i in range(24)]
    return {"ham10000": ham, "kvasir": discs(n=12, size=16, seed=3),
            "blastocyst": discs(n=12, size=16, seed=4, classes=3)}


def test_sites_start_from_the_notebook_parameters(site_data):
    se = SiteExplorer(site_data, num_sites=4, scheme="label", concentration=0.3, seed=0)
    assert (se.sites.value, se.scheme.value) == (4, "label")
    assert se.concentration.value == pytest.approx(0.3)
    assert se.concentration.style.description_width == "initial"  # no "concentra…"
    assert "concentration 0.3" in se.title and "dx" in se.title
    assert se.partition.num_sites == 4
    first = se.picture.value
    se.scheme.value = "iid"
    assert se.picture.value != first and "concentration" not in se.title
    assert "medseg-site-scheme" in se.scheme._dom_classes
    assert "medseg-site-plot" in se.picture._dom_classes


def test_each_dataset_gets_a_label_that_means_something(site_data):
    se = SiteExplorer(site_data, num_sites=3)
    assert se.by.value == "dx"
    se.dataset.value = "blastocyst"
    assert se.by.value == "dominant_class" and "lesion_size" not in se.by.options
    assert "class_presence" in se.by.options and "blastocyst" in se.title
    se.dataset.value = "kvasir"
    assert se.by.value == "lesion_size"
    with pytest.raises(ValueError, match="not a label of ham10000"):
        SiteExplorer(site_data, by="dominant_class")


# -------------------------------------------------------------- TrainingMonitor
def _config(rounds):
    return RunConfig(model="unet", width=4, size=32, sites=2, rounds=rounds, batch_size=4,
                     lr=3e-3, seed=0, device="cpu", strategy="sflv2")


def test_stop_ends_a_real_run_at_a_round_boundary_and_resume_continues(tmp_path):
    data = discs(n=16, size=32)
    monitor = TrainingMonitor()
    seen = []

    def on_round(history, r):  # the learner presses Stop while round 2 trains
        seen.append(r)
        if r == 1:
            monitor.stop_button.click()
        return monitor.on_round(history, r)

    history, _ = train(_config(4), tmp_path, data=data, progress=False, on_round=on_round)
    assert seen == [0, 1] and monitor.stop_requested and monitor.stop_button.disabled
    assert len(history.rows()) == 2 and "stopped on request after round 2 of 4" in history.events
    assert "stopping after this round" in monitor.status.value
    assert "round 2 of 4" in monitor.status.value
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["round"] == 1
    rows = monitor.runs["sflv2 seed 0"]
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[-1]["bytes_total"] == sum(r["bytes_up"] + r["bytes_down"]
                                          for r in history.rows())
    # a new run on the same monitor is not stopped by the old request
    resumed, _ = train(_config(4), tmp_path, data=data, progress=False, resume=True,
                       on_round=monitor.on_round)
    assert [r["round"] for r in resumed.rows()] == [0, 1, 2, 3]
    assert not monitor.stop_requested and not monitor.stop_button.disabled
    assert [r["round"] for r in monitor.runs["sflv2 seed 0"]] == [0, 1, 2, 3]
    assert "medseg-monitor-stop" in monitor.stop_button._dom_classes


def test_monitor_draws_each_round(tmp_path):
    data = SegData("d", discs(n=12, size=32).images, discs(n=12, size=32).masks,
                   ("background", "disc"))
    monitor = TrainingMonitor(metrics=("train_loss", "dice", "iou"))
    pictures = []
    train(_config(2), None, data=data, progress=False,
          on_round=lambda h, r: pictures.append(monitor.picture.value) or monitor.on_round(h, r))
    assert pictures[0] == b"" and monitor.picture.value[:4] == b"\x89PNG"
    assert "iou" in monitor.status.value and "round 2 of 2" in monitor.status.value
