"""The figures of ``medseg_kit.viz``: each run, class and owner can be told apart, bytes are
shown in binary units for the size asked for, and nothing overlaps."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from medseg_kit import viz  # noqa: E402
from medseg_kit.models import create_model  # noqa: E402
from medseg_kit.split import Split  # noqa: E402
from medseg_kit.units import MIB, format_bytes  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def unet():
    return create_model("unet", width=4)


def _rows(values):
    return [{"round": r, "train_loss": v, "dice": 1 - v} for r, v in enumerate(values)]


def test_curves_that_coincide_all_stay_visible():
    # six runs with the very same curve: the old figure hid five of them under the last
    runs = {s: _rows([0.9, 0.5, 0.3]) for s in ("centralized", "local", "fl", "sl", "sflv1",
                                                 "sflv2")}
    fig = viz.plot_curves(runs)
    for ax in fig.axes:
        lines = ax.get_lines()
        assert len(lines) == 6
        styles = {(str(ln.get_linestyle()), ln.get_marker()) for ln in lines}
        assert len(styles) == 6, "each run needs its own line style and marker"
        # drawn from the largest hollow marker to the smallest: a later one sits inside
        order = sorted(lines, key=lambda ln: ln.get_zorder())
        sizes = [ln.get_markersize() for ln in order]
        widths = [ln.get_linewidth() for ln in order]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 6
        assert widths == sorted(widths, reverse=True)
        assert all(ln.get_fillstyle() == "none" for ln in lines)
    assert [t.get_text() for t in fig.axes[-1].get_legend().get_texts()] == list(runs)


def test_bytes_in_mib_with_labels_that_do_not_overlap():
    rows = [{"strategy": s, "bytes_per_site_round": b} for s, b in
            [("centralized", 0), ("local", 0), ("fl", 3 * MIB), ("sl", 40 * MIB),
             ("sflv1", 42 * MIB + 512 * 1024), ("sflv2", 41 * MIB)]]
    fig = viz.plot_bytes(rows)
    ax = fig.axes[0]
    assert "MiB" in ax.get_ylabel() and "MB" not in ax.get_ylabel().replace("MiB", "")
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([r["bytes_per_site_round"] / MIB for r in rows])
    texts = [t.get_text() for t in ax.texts]
    assert texts == [format_bytes(r["bytes_per_site_round"]) for r in rows]
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ticks = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    assert [t.get_text() for t in ax.get_xticklabels()] == [r["strategy"] for r in rows]
    gaps = [b.x0 - a.x1 for a, b in zip(ticks, ticks[1:])]
    assert min(gaps) >= 5, f"strategy labels touch or overlap (gaps {gaps} px)"


@pytest.mark.parametrize("size", [32, 64])
def test_split_title_names_the_size_and_its_bytes(unet, size):
    split = Split(unet, 2, 8)
    b = split.bytes_per_image(size)
    title = viz.plot_split(split, size).axes[0].get_title()
    assert f"{size}x{size}" in title
    assert format_bytes(b["up"]) in title and format_bytes(b["down"]) in title


def test_cut_diagram_colours_stages_by_owner(unet):
    front, back = 3, 7
    fig = viz.plot_cut(unet, front, back, 32)
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(unet)
    colours = [matplotlib.colors.to_hex(p.get_facecolor()) for p in boxes]
    want = ([viz.SIDE_COLORS["front"]] * front + [viz.SIDE_COLORS["server"]] * (back - front)
            + [viz.SIDE_COLORS["back"]] * (len(unet) - back))
    assert colours == [w.lower() for w in want]
    hatched = [bool(p.get_hatch()) for p in boxes]
    assert hatched == [i >= back for i in range(len(unet))]  # told apart without colour
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    for c in Split(unet, front, back).crossings(32):
        assert format_bytes(c.bytes) in texts


def test_raw_crossings_are_marked_in_the_diagram():
    net = create_model("cgnet")
    fig = viz.plot_cut(net, 1, 6, 32)  # sends the image and its pooled copy
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("x (raw)" in t for t in texts)


def test_channel_mosaic_scales_each_channel_and_pads_with_nan():
    a = np.stack([np.full((2, 3), 5.0), np.arange(6.0).reshape(2, 3), np.zeros((2, 3))])
    m = viz.channel_mosaic(a, pad=1)
    assert m.shape == (2 * 2 + 1, 2 * 3 + 1)  # 3 channels on a 2 x 2 grid
    np.testing.assert_allclose(m[0:2, 4:7], np.arange(6.0).reshape(2, 3) / 5)
    assert np.all(m[0:2, 0:3] == 0)  # a constant channel is flat, not NaN
    assert np.isnan(m[3:5, 4:7]).all() and np.isnan(m[2]).all()
    assert viz.channel_mosaic(np.zeros((40, 2, 2)), max_channels=16, pad=0).shape == (8, 8)


def test_smashed_mosaic_one_panel_per_tensor_and_raw_as_image():
    rng = np.random.default_rng(0)
    acts = {"x": rng.random((3, 8, 8)), "e1": rng.random((4, 8, 8)), "e2": rng.random((8, 4, 4))}
    fig = viz.plot_smashed(acts, ["x", "e1", "e2"], raw=["x"])
    assert len(fig.axes) == 3
    assert fig.axes[0].get_images()[0].get_array().ndim == 3  # the image itself, in colour
    assert "RAW" in fig.axes[0].get_title() and "4 of 4 channels" in fig.axes[1].get_title()
    assert "8x4x4" in fig.axes[2].get_title()


def test_mask_outlines_follow_the_object():
    m = np.zeros((10, 12), int)
    m[2:6, 3:9] = 2
    (c,) = viz.mask_outlines(m, 2)
    assert c[:, 0].min() == pytest.approx(1.5) and c[:, 0].max() == pytest.approx(5.5)
    assert c[:, 1].min() == pytest.approx(2.5) and c[:, 1].max() == pytest.approx(8.5)
    assert viz.mask_outlines(m, 1) == []
    full = np.ones((4, 4), int)  # an object touching the border is still closed
    (c,) = viz.mask_outlines(full, 1)
    np.testing.assert_allclose(c[0], c[-1])


def test_mask_row_titles_carry_dice_and_classes_have_own_line_styles():
    img = np.zeros((16, 16, 3), np.uint8)
    truth = np.zeros((16, 16), int)
    truth[2:8, 2:8], truth[9:14, 9:14] = 1, 2
    pred = truth.copy()
    pred[9:14, 9:14] = 0
    fig = viz.plot_mask_row(img, truth, {"sflv2": pred}, {"sflv2": 0.5},
                            ["background", "zona", "core"])
    assert len(fig.axes) == 3
    assert [a.get_title() for a in fig.axes] == ["image", "truth", "sflv2\nDice 0.500"]
    truth_lines = fig.axes[1].get_lines()
    assert len({ln.get_linestyle() for ln in truth_lines}) == 2  # one style per class
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:2] == ["zona", "core"]
