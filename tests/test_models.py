"""The model zoo: every network builds, trains, checks its input and refuses bad cuts.

Small and fast: width 4 at 32x32 (each model's smallest size among 32/64/96/128),
a handful of Adam steps on a fixed synthetic batch (a bright disc on noise).
"""

import pytest
import torch
import torch.nn.functional as F

from medseg_kit.models import create_model, list_models, model_info
from medseg_kit.models.summary import crossing_bytes, family_report, markdown_table, model_table
from medseg_kit.split import CutError, RawDataError, Split, valid_cuts

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
    assert unet["published_params"] == "31.0M"
    assert "| unet |" in markdown_table(rows)


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
