"""Per-class Dice/IoU, precision/recall and HD95 against cases worked out by hand."""

import math

import numpy as np
import pytest
import torch

from medseg_kit import metrics

BLASTO = ("background", "zona pellucida", "trophectoderm", "blastocoel", "inner cell mass")


def t(*images):
    return torch.tensor(images, dtype=torch.long)


def test_binary_precision_recall_by_hand():
    # pred 3 pixels, target 1, shared 1
    s = metrics.evaluate_predictions(t([[1, 1, 1, 0]]), t([[0, 1, 0, 0]]), 2,
                                     ("background", "polyp"))
    assert s["precision"] == 1 / 3 and s["recall"] == 1.0
    assert s["dice"] == 2 * 1 / (3 + 1) and s["iou"] == 1 / 3
    assert s["dice/polyp"] == s["dice"] and s["iou/polyp"] == s["iou"]
    # background: pred {3}, target {0, 2, 3}, shared {3}
    assert s["dice/background"] == 2 * 1 / (1 + 3) and s["precision/background"] == 1.0
    assert s["dice_with_bg"] == (0.5 + 0.5) / 2
    assert s["n_images"] == 1


def test_multiclass_per_class_mean_and_pooled_by_hand():
    pred = t([[0, 1, 1, 2],
              [0, 1, 2, 2]],
             [[0, 0, 0, 0],
              [0, 1, 0, 0]])
    target = t([[0, 1, 2, 2],
                [0, 0, 2, 2]],
               [[0, 0, 0, 0],
                [0, 1, 0, 0]])
    s = metrics.evaluate_predictions(pred, target, 3, ("background", "ring", "core"))
    # image 0 -- class 0: pred 2, target 3, shared 2; class 1: 3, 1, 1; class 2: 3, 4, 3
    # image 1 -- perfect; class 2 is in neither mask: scores 1.0 by convention
    d0 = {"background": 4 / 5, "ring": 2 / 4, "core": 6 / 7}
    i0 = {"background": 2 / 3, "ring": 1 / 3, "core": 3 / 4}
    for name in d0:
        assert s[f"dice/{name}"] == pytest.approx((d0[name] + 1) / 2)
        assert s[f"iou/{name}"] == pytest.approx((i0[name] + 1) / 2)
    assert s["precision/ring"] == pytest.approx((1 / 3 + 1) / 2)
    assert s["recall/ring"] == pytest.approx((1 + 1) / 2)
    assert s["precision/core"] == pytest.approx((3 / 3 + 1) / 2)
    assert s["recall/core"] == pytest.approx((3 / 4 + 1) / 2)
    assert s["dice"] == pytest.approx(((2 / 4 + 1) / 2 + (6 / 7 + 1) / 2) / 2)
    assert s["dice_with_bg"] == pytest.approx(np.mean([(v + 1) / 2 for v in d0.values()]))
    assert s["iou_with_bg"] == pytest.approx(np.mean([(v + 1) / 2 for v in i0.values()]))
    # pooled: ring inter 1+1 of 3+1 predicted and 1+1 true; core 3 of 3 and 4
    assert s["dice_pooled"] == pytest.approx((2 * 2 / (4 + 2) + 2 * 3 / (3 + 4)) / 2)
    assert s["iou_pooled"] == pytest.approx((2 / (4 + 2 - 2) + 3 / (3 + 4 - 3)) / 2)
    # headline = mean of the per-class figures = mean of the per-image figures
    dice_img, iou_img = metrics.image_scores(metrics.overlap_counts(pred, target, 3).numpy())
    assert s["dice"] == pytest.approx(dice_img.mean())
    assert dice_img[1] == 1.0 and iou_img[1] == 1.0


def test_summarize_keeps_its_old_keys_and_meaning():
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[0, :3, :3] = target[0, :3, :3] = 1
    target[1, 0, 0] = 1
    s = metrics.summarize(metrics.overlap_counts(pred, target, 2).numpy())
    assert s["dice"] == 0.5 and np.isclose(s["dice_pooled"], 18 / 19)
    assert s["dice/1"] == s["dice"]  # no names: the class ids
    assert s["recall"] == 0.5 and s["precision"] == 0.5  # image 1 predicts nothing
    assert "dice/1" not in metrics.summarize(np.zeros((1, 2, 3)), per_class=False)


def test_precision_recall_when_a_set_is_empty():
    p, r = metrics.precision_recall_from_counts(np.array([[0, 0, 0], [0, 0, 5], [0, 4, 0]]))
    assert p.tolist() == [1.0, 0.0, 0.0]  # nothing-nothing; missed; hallucinated
    assert r.tolist() == [1.0, 0.0, 0.0]


def test_class_names_become_keys_and_are_checked():
    y = np.zeros((1, 6, 6), np.uint8)
    y[0, 1:5, 1:5] = 1
    y[0, 2:4, 2:4] = 4
    s = metrics.evaluate_predictions(y, y, 5, BLASTO)
    for key in ("dice/zona_pellucida", "iou/trophectoderm", "dice/inner_cell_mass",
                "recall/blastocoel"):
        assert s[key] == 1.0
    with pytest.raises(ValueError, match="one name per class"):
        metrics.evaluate_predictions(y, y, 5, BLASTO[:3])


def test_numpy_and_torch_inputs_agree():
    rng = np.random.default_rng(0)
    p, y = rng.integers(0, 3, (3, 8, 8)), rng.integers(0, 3, (3, 8, 8))
    a = metrics.evaluate_predictions(p, y, 3, hd95=True)
    b = metrics.evaluate_predictions(torch.from_numpy(p), torch.from_numpy(y), 3, hd95=True)
    assert a == pytest.approx(b, nan_ok=True)


# ---------------------------------------------------------------------- HD95
def square(top, left, side, shape=(24, 24)):
    m = np.zeros(shape, bool)
    m[top:top + side, left:left + side] = True
    return m


def test_hd95_of_two_squares_offset_by_k():
    # 10x10 square and the same square 3 pixels to the right. Boundary of each: 36 pixels.
    # From A's boundary to B's: top and bottom rows: 7 pixels on B's rows (0), then 1, 2, 3
    # for the 3 columns left of B; left column (8 inner pixels): 3; right column (8 inner
    # pixels, inside B): min(3, distance to B's top or bottom row) = 1,2,3,3,3,3,2,1.
    # So each way: 14 x 0, 4 x 1, 4 x 2, 14 x 3; both ways: 72 distances, the 95th
    # percentile (rank 0.95 * 71 = 67.45) falls among the 28 threes.
    a, b = square(5, 4, 10), square(5, 7, 10)
    d = np.sort(metrics.surface_distances(a, b))
    assert np.bincount(d.astype(int)).tolist() == [28, 8, 8, 28]
    assert metrics.hd95(a, b) == 3.0 == metrics.hd95(b, a)
    assert metrics.hd95(a, a) == 0.0


def test_hd95_interpolates_and_shrugs_off_one_stray_pixel():
    # two vertical 9-pixel lines 2 apart (every pixel is a boundary pixel), plus one stray
    # predicted pixel 12 pixels right of the target line: 18 distances of 2 and one of 12;
    # rank 0.95 * 18 = 17.1 -> 2 + 0.1 * (12 - 2) = 3.0, while the Hausdorff distance is 12
    pred, target = np.zeros((20, 24), bool), np.zeros((20, 24), bool)
    pred[5:14, 5] = True
    target[5:14, 7] = True
    assert metrics.hd95(pred, target) == 2.0
    pred[9, 19] = True
    assert metrics.surface_distances(pred, target).max() == 12.0
    assert metrics.hd95(pred, target) == pytest.approx(3.0)


def test_hd95_variants_agree_on_a_shifted_copy():
    # the offset squares above: each direction alone is 14 x 0, 4 x 1, 4 x 2, 14 x 3; the
    # directed 95th percentile (rank 0.95 * 35 = 33.25) is 3 both ways, so MONAI's max is 3
    a, b = square(5, 4, 10), square(5, 7, 10)
    to_b, to_a = metrics.directed_surface_distances(a, b)
    assert np.bincount(to_b.astype(int)).tolist() == [14, 4, 4, 14]
    assert np.bincount(to_a.astype(int)).tolist() == [14, 4, 4, 14]
    assert metrics.hd95(a, b, "monai") == 3.0 == metrics.hd95(a, b, "medpy")


def test_hd95_monai_takes_the_larger_directed_percentile():
    # the stray-pixel case above. Prediction -> target: 9 x 2 and the stray 12; rank
    # 0.95 * 9 = 8.55 -> 2 + 0.55 * (12 - 2) = 7.5. Target -> prediction: 9 x 2 -> 2.
    # MONAI: max(7.5, 2) = 7.5; MedPy pools the 19 distances: 3.0 (worked out above)
    pred, target = np.zeros((20, 24), bool), np.zeros((20, 24), bool)
    pred[5:14, 5] = True
    target[5:14, 7] = True
    pred[9, 19] = True
    to_target, to_pred = metrics.directed_surface_distances(pred, target)
    assert sorted(to_target.tolist()) == [2.0] * 9 + [12.0]
    assert to_pred.tolist() == [2.0] * 9
    assert metrics.hd95(pred, target, "monai") == pytest.approx(7.5)
    assert metrics.hd95(target, pred, "monai") == pytest.approx(7.5)  # symmetric
    assert metrics.hd95(pred, target, "medpy") == pytest.approx(3.0)


def test_hd95_variants_can_be_many_pixels_apart():
    # target: an 18-pixel vertical line; prediction: the same line plus two stray pixels 20
    # columns away (every pixel of a 1-pixel line is a boundary pixel).
    # Prediction -> target: 18 x 0 and 2 x 20; rank 0.95 * 19 = 18.05 falls on a 20, so
    # MONAI's HD95 is 20 (target -> prediction is all 0).
    # MedPy pools 38 distances, 36 x 0 and 2 x 20: rank 0.95 * 37 = 35.15 -> 0.15 * 20 = 3.
    target = np.zeros((20, 30), bool)
    target[0:18, 2] = True
    pred = target.copy()
    pred[8:10, 22] = True
    to_target, to_pred = metrics.directed_surface_distances(pred, target)
    assert sorted(to_target.tolist()) == [0.0] * 18 + [20.0, 20.0]
    assert to_pred.tolist() == [0.0] * 18
    assert metrics.hd95(pred, target, "monai") == 20.0
    assert metrics.hd95(pred, target) == pytest.approx(3.0)  # medpy, the default
    # the same images through the per-image and summary functions
    p, t = pred[None].astype(np.int64), target[None].astype(np.int64)
    assert metrics.hd95_per_image(p, t, 2, variant="monai")[0, 1] == 20.0
    assert metrics.hd95_per_image(p, t, 2)[0, 1] == pytest.approx(3.0)
    assert metrics.evaluate_predictions(p, t, 2, hd95=True, hd95_variant="monai")["hd95"] == 20.0
    assert metrics.evaluate_predictions(p, t, 2, hd95=True)["hd95"] == pytest.approx(3.0)


def test_hd95_variant_is_checked_and_keeps_the_empty_conventions():
    empty, sq = np.zeros((12, 16), bool), square(2, 2, 4, (12, 16))
    assert math.isnan(metrics.hd95(empty, empty, "monai"))
    assert metrics.hd95(empty, sq, "monai") == metrics.hd95(sq, empty, "monai") == 20.0
    for call in (lambda: metrics.hd95(sq, sq, "MONAI"),
                 lambda: metrics.hd95_per_image(sq[None], sq[None], 2, variant="scipy")):
        with pytest.raises(ValueError, match="unknown HD95 variant .*medpy, monai"):
            call()


def test_hd95_empty_conventions():
    empty, sq = np.zeros((12, 16), bool), square(2, 2, 4, (12, 16))
    assert math.isnan(metrics.hd95(empty, empty))
    assert metrics.hd95(empty, sq) == metrics.hd95(sq, empty) == 20.0  # diagonal of 12 x 16
    with pytest.raises(ValueError, match="2-D masks"):
        metrics.hd95(empty, empty[:5])


def test_hd95_per_image_multiclass_and_its_summary():
    target = np.zeros((2, 24, 24), np.int64)
    target[0][square(5, 4, 10)] = 1
    target[0][square(18, 18, 3)] = 2
    target[1][square(2, 2, 6)] = 1
    pred = np.zeros_like(target)
    pred[0][square(5, 7, 10)] = 1  # class 1 shifted by 3
    pred[0][square(18, 18, 3)] = 2  # class 2 exact
    pred[1][square(2, 2, 6)] = 1  # image 1: class 1 exact, class 2 in neither
    hd = metrics.hd95_per_image(pred, target, 3)
    assert np.isnan(hd[:, 0]).all()  # background is not scored
    assert hd[0, 1] == 3.0 and hd[0, 2] == 0.0 and hd[1, 1] == 0.0 and np.isnan(hd[1, 2])
    s = metrics.summarize_hd95(hd, ("background", "ring", "core"))
    assert s == {"hd95": 1.0, "hd95/ring": 1.5, "hd95/core": 0.0}  # NaNs left out
    full = metrics.evaluate_predictions(pred, target, 3, ("background", "ring", "core"),
                                        hd95=True)
    assert full["hd95"] == 1.0 and full["hd95/ring"] == 1.5
    assert "hd95" not in metrics.evaluate_predictions(pred, target, 3)  # opt-in


def test_hd95_missed_object_is_penalised_not_ignored():
    target = np.zeros((2, 12, 16), np.int64)
    target[:, 2:6, 2:6] = 1
    pred = target.copy()
    pred[1] = 0  # image 1: the object is missed
    s = metrics.evaluate_predictions(pred, target, 2, hd95=True)
    assert s["hd95"] == (0.0 + 20.0) / 2
