"""The model zoo: every network builds, trains, checks its input and refuses bad cuts.

Small and fast: width 4 at 32x32 (each model's smallest size among 32/64/96/128),
a handful of Adam steps on a fixed synthetic batch (a bright disc on noise).
"""

import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from medseg_kit.models import check_input_size, create_model, list_models, model_info, registry
from medseg_kit.models.staged import INPUT, OUTPUT
from medseg_kit.split import CutError, RawDataError, Split, valid_cuts
from medseg_kit.zoo import crossing_bytes, family_report, markdown_table, model_table, models_report

MEDSEGNET10 = ["unet", "segnet", "deeplabv3", "deeplabv3plus", "refinenet", "sunet", "cgnet",
               "ducknet", "attention_unet", "swin_unet"]


def smallest_size(net):
    return next(s for s in (32, 64, 96, 128) if net.accepts(s))


def disc_batch(n=4, size=32, classes=1, seed=0):
    """Images of a bright disc (random centre and radius) on noise, and its mask."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    cy, cx = torch.randint(size // 4, 3 * size // 4, (2, n), generator=g)
    r = torch.randint(size // 8, size // 4, (n,), generator=g)
    inside = ((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2
              <= r[:, None, None] ** 2)
    x = 0.3 * torch.randn(n, 3, size, size, generator=g) + inside[:, None].float()
    y = inside.long()
    if classes > 1:  # a second foreground class: the disc's right half
        y = y + (inside & (xx[None] > cx[:, None, None])).long()
    return x, y


def test_all_ten_registered():
    assert list_models() == MEDSEGNET10


@pytest.mark.parametrize("name", MEDSEGNET10)
def test_registry_metadata_and_stage_table(name):
    info = model_info(name)
    assert info.teaching_width >= 1 and info.paper_width >= info.teaching_width
    assert info.reference
    net = create_model(name, width=4)
    assert 6 <= len(net) <= 15
    front, back = net.default_cut
    assert back < len(net)  # the last layers and the loss stay on the site
    split = Split(net, front, back)  # valid and free of raw image data
    assert not split.raw_up and not split.labels_to_server
    assert net.describe().count("\n") == len(net) - 1


@pytest.mark.parametrize("name", MEDSEGNET10)
def test_loss_falls_on_a_disc(name):
    torch.manual_seed(0)
    net = create_model(name, in_channels=3, num_classes=1, width=4)
    x, y = disc_batch(size=smallest_size(net))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        logits = net(x)
        assert logits.shape == (4, 1, *x.shape[-2:])
        loss = F.binary_cross_entropy_with_logits(logits, y[:, None].float())
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", MEDSEGNET10)
def test_multiclass_output_shape(name):
    torch.manual_seed(0)
    net = create_model(name, in_channels=3, num_classes=5, width=4)
    x, y = disc_batch(n=2, size=smallest_size(net), classes=5)
    logits = net(x)
    assert logits.shape == (2, 5, *x.shape[-2:])
    F.cross_entropy(logits, y).backward()


@pytest.mark.parametrize("name", MEDSEGNET10)
def test_invalid_size_names_valid_sizes(name):
    net = create_model(name, width=4)
    for bad in (33, net.size_multiple * 3 + 1, 8):
        if net.accepts(bad):
            continue
        with pytest.raises(ValueError) as err:
            net(torch.zeros(1, 3, bad, bad))
        msg = str(err.value)
        assert name in msg and str(bad) in msg
        assert str(net.example_sizes()[0]) in msg  # names sizes that work
    with pytest.raises(ValueError, match="expects a batch"):
        net(torch.zeros(1, 1, 32, 32))  # wrong channel count


@pytest.mark.parametrize("name", MEDSEGNET10)
def test_invalid_cut_lists_valid_range(name):
    net = create_model(name, width=4)
    n = len(net)
    for front, back in ((0, 2), (3, 3), (2, 1), (1, n + 1)):
        with pytest.raises(CutError) as err:
            Split(net, front, back)
        msg = str(err.value)
        assert f"1 <= front < back <= {n}" in msg
        assert net.stage_names[-1] in msg  # the stages are listed


@pytest.mark.parametrize("name,front,tensor", [("cgnet", 3, "img4"), ("cgnet", 1, "img2"),
                                               ("ducknet", 2, "p1"), ("ducknet", 6, "p5")])
def test_pooled_image_copy_is_raw(name, front, tensor):
    net = create_model(name, width=4)
    back = len(net) - 1
    with pytest.raises(RawDataError, match=tensor):
        Split(net, front, back)
    split = Split(net, front, back, allow_raw=True)
    assert tensor in split.raw_up
    assert net.is_raw(tensor)
    crossing = {c.name: c for c in split.crossings(32)}[tensor]
    assert crossing.raw and not crossing.has_grad


@pytest.mark.parametrize("name", ["cgnet", "ducknet"])
def test_injection_networks_keep_raw_copies_on_site_by_default(name):
    net = create_model(name, width=4)
    pools = [i for i, s in enumerate(net.specs) if net.stage_params(i) == 0]
    assert pools, "the pooled image copies must be parameter-free stages"
    raw = {t for i in pools for t in net.specs[i].outputs}
    assert all(net.is_raw(t) for t in raw)
    cuts = valid_cuts(net, include_vanilla=True)
    assert cuts and all(not (set(Split(net, *c).up) & (raw | {"x"})) for c in cuts)
    assert net.default_cut in cuts
    # the first raw-free front is the default's: everything that reads a copy is on site
    assert min(f for f, _ in cuts) == net.default_cut[0]


def test_segnet_indices_cross_without_gradient():
    net = create_model("segnet", width=4)
    split = Split(net, 2, 9)
    assert "idx2" in split.up and "idx1" in split.kept
    idx = {c.name: c for c in split.crossings(32)}["idx2"]
    assert idx.dtype == torch.int64 and not idx.has_grad and not idx.raw
    nbytes = split.bytes_per_image(32)
    enc2 = {c.name: c for c in split.crossings(32)}["enc2"]
    assert nbytes["up_activations"] == enc2.bytes + idx.bytes
    assert nbytes["down_gradients"] == enc2.bytes  # no gradient for the indices


@pytest.mark.parametrize("size", [64, 96])
def test_swin_unet_window_adapts(size):
    net = create_model("swin_unet", width=8)
    assert net(torch.zeros(1, 3, size, size)).shape == (1, 1, size, size)
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.zeros(1, 3, size + 16, size + 16))


@pytest.mark.parametrize("name,kw", [("deeplabv3", {"output_stride": 8, "depth": 50}),
                                     ("deeplabv3plus", {"output_stride": 8}),
                                     ("refinenet", {"depth": 50})])
def test_backbone_options(name, kw):
    net = create_model(name, width=4, **kw)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 1, 32, 32)


def test_deeplab_rejects_bad_output_stride():
    with pytest.raises(ValueError, match="output_stride"):
        create_model("deeplabv3", width=4, output_stride=4)


def test_model_table():
    rows = model_table(size=64, names=["unet", "cgnet"])
    assert [r["name"] for r in rows] == ["unet", "cgnet"]
    unet = rows[0]
    assert unet["stages"] == 10 and unet["default_cut"] == create_model("unet").default_cut
    assert unet["params_paper"] > unet["params_teaching"] > 0
    assert 0 < unet["gflops_teaching"] < unet["gflops_paper"]
    assert unet["published_params"] == "31.0M" and unet["published_comparable"]
    assert (unet["size_multiple"], unet["min_size"]) == (16, 16)
    assert "| unet |" in markdown_table(rows)
    with pytest.raises(ValueError, match="segnet accepts input sizes"):
        model_table(size=48, names=["unet", "segnet"])  # refused before any work


# ------------------------------------------------------------- input sizes
def _forward_keeps_size(net, size, batch=1):
    """Whether the stage table maps a size x size batch to size x size logits (the
    model's own check is bypassed: this is what the rule must describe)."""
    try:
        with torch.no_grad():
            out = net.run({INPUT: torch.zeros(batch, net.in_channels, size, size)})[OUTPUT]
    except (RuntimeError, ValueError):
        return False
    return tuple(out.shape[-2:]) == (size, size)


def _passes(name, size):
    try:
        check_input_size(name, size)
    except ValueError:
        return False
    return True


SIZES = range(1, 161)


@pytest.mark.parametrize("name", MEDSEGNET10)
def test_size_rule_is_exact(name):
    """A side passes ``check_input_size`` iff the forward pass returns logits of that side,
    for every side from 1 to 160 (eval mode, batch 1; the same sides pass in train mode
    at batch 2, the smallest batch the run loop trains on, checked at the extremes)."""
    net = create_model(name, width=2).eval()
    works = [s for s in SIZES if _forward_keeps_size(net, s)]
    accepted = [s for s in SIZES if _passes(name, s)]
    assert accepted == works, (name, sorted(set(accepted) ^ set(works)))
    assert accepted == [s for s in SIZES if net.accepts(s)]  # the net's own check agrees
    net.train()
    for s in (accepted[0], accepted[1], accepted[-1]):
        assert _forward_keeps_size(net, s, batch=2), (name, s)


@pytest.mark.parametrize("name,kw", [("deeplabv3", {"output_stride": 8, "depth": 50}),
                                     ("deeplabv3plus", {"output_stride": 8, "depth": 50}),
                                     ("refinenet", {"depth": 50})])
def test_size_rule_is_exact_for_backbone_options(name, kw):
    net = create_model(name, width=2, **kw).eval()
    sizes = range(1, 97)
    assert [s for s in sizes if net.accepts(s)] == [
        s for s in sizes if _forward_keeps_size(net, s)]


def test_check_input_size_says_what_to_use_in_one_line():
    check_input_size("unet", 64)  # accepted: no error
    cases = {("unet", 65): "unet accepts input sizes that are multiples of 16 and at least "
                           "16; got 65 (nearest: 64 or 80)",
             ("unet", 8): "unet accepts input sizes that are multiples of 16 and at least 16; "
                          "got 8 (nearest: 16)",
             ("segnet", 48): "segnet accepts input sizes that are multiples of 32 and at least "
                             "32; got 48 (nearest: 32 or 64)",
             ("swin_unet", 48): "swin_unet accepts input sizes that are multiples of 32 and at "
                                "least 32; got 48 (nearest: 32 or 64)"}
    for (name, size), msg in cases.items():
        with pytest.raises(ValueError) as err:
            check_input_size(name, size)
        assert str(err.value) == msg
    for bad in (0, -32, 64.0, "64", True):
        with pytest.raises(ValueError, match="positive int"):
            check_input_size("unet", bad)
    with pytest.raises(ValueError) as err:
        check_input_size("unet3d", 64)
    assert "\n" not in str(err.value) and ", ".join(MEDSEGNET10) in str(err.value)


def test_check_input_size_draws_no_random_numbers():
    """A config checked between seeding and training leaves the training bit-identical."""
    registry._shape_model.cache_clear()  # build the shapes-only models afresh
    torch.manual_seed(0)
    expected = torch.rand(4)
    torch.manual_seed(0)
    for name in MEDSEGNET10:
        check_input_size(name, 64)
    assert torch.equal(torch.rand(4), expected)


# -------------------------------------------------- the published column
def test_every_published_count_says_what_it_counts():
    for name in MEDSEGNET10:
        info = model_info(name)
        assert info.published_source, name
    # Attention U-Net's 6.4 M is the authors' 3-D model with 16 base filters: not the
    # kit's 2-D network at any width, and marked so
    att = model_info("attention_unet")
    assert att.published_params == "6.4M" and not att.published_comparable
    assert "3-D" in att.published_source
    assert not model_info("sunet").published_comparable  # an ImageNet classifier
    assert model_info("unet").published_comparable and model_info("segnet").published_comparable


def test_models_report_explains_every_row():
    text = models_report(size=64)
    lines = text.splitlines()
    for name in MEDSEGNET10:
        assert any(line.startswith(f"{name} ") for line in lines), name  # a table row
        assert any(line.startswith(f"  {name}: ") for line in lines), name  # its note
    row = next(line for line in lines if line.startswith("attention_unet "))
    assert "6.4M*" in row and "32.43M (w=64)" in row
    assert "  attention_unet: 6.4M*: the paper's 3-D model" in text
    assert "NOT like for like" in text and "GFLOPs: forward pass of one 64x64 image" in text
    assert max(len(line) for line in lines[12:]) <= 100  # the notes are wrapped


def test_summary_module_needs_no_split():
    code = ("import sys, medseg_kit.models.summary; "
            "assert 'medseg_kit.split' not in sys.modules and 'medseg_kit.zoo' not in "
            "sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", ["segnet", "cgnet", "deeplabv3plus"])
def test_crossing_bytes_match_split(name):
    net = create_model(name, width=4)
    table = crossing_bytes(net, 32, allow_raw=True, include_vanilla=True)
    assert len(table) == len(net) * (len(net) - 1) // 2
    for cut, b in table.items():
        ref = Split(net, *cut, allow_raw=True).bytes_per_image(32)
        assert (b["up"], b["down"]) == (ref["up"], ref["down"]), cut
    report = family_report(net, 32)
    assert "default cut" in report and "*" in report
