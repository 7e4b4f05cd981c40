import numpy as np
import torch

from medseg_kit import metrics


def masks(*rows):
    return torch.tensor(rows, dtype=torch.long)


def test_hand_computed_binary_case():
    pred = masks([[1, 1, 0, 0]])
    target = masks([[0, 1, 1, 0]])
    dice, iou = metrics.dice_iou(pred, target, 2)
    assert dice[0, 1] == 2 * 1 / (2 + 2)  # 0.5
    assert iou[0, 1] == 1 / 3
    assert dice[0, 0] == 0.5  # background: 1 shared of 2 + 2


def test_empty_cases():
    empty = masks([[0, 0, 0, 0]])
    full = masks([[1, 1, 0, 0]])
    d, i = metrics.dice_iou(empty, empty, 2)
    assert d[0, 1] == 1.0 and i[0, 1] == 1.0  # nothing there, nothing predicted
    d, i = metrics.dice_iou(full, empty, 2)
    assert d[0, 1] == 0.0 and i[0, 1] == 0.0
    d, i = metrics.dice_iou(empty, full, 2)
    assert d[0, 1] == 0.0 and i[0, 1] == 0.0


def test_mean_and_pooled_aggregation_differ_as_documented():
    # image 1: big object, perfect; image 2: tiny object, missed
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    pred[0, :3, :3] = target[0, :3, :3] = 1  # 9 pixels, all right
    target[1, 0, 0] = 1  # 1 pixel, missed
    s = metrics.summarize(metrics.overlap_counts(pred, target, 2).numpy())
    assert s["dice"] == 0.5  # mean of 1.0 and 0.0
    assert np.isclose(s["dice_pooled"], 2 * 9 / (9 + 10))


def test_predict_binary_and_multiclass():
    logits = torch.tensor([[[[-1.0, 2.0]]]])
    assert metrics.predict(logits).tolist() == [[[0, 1]]]
    logits = torch.zeros(1, 3, 1, 2)
    logits[0, 2, 0, 0] = 5
    logits[0, 1, 0, 1] = 5
    assert metrics.predict(logits).tolist() == [[[2, 1]]]


def test_shape_mismatch_is_named():
    import pytest

    with pytest.raises(ValueError, match="same shape"):
        metrics.overlap_counts(torch.zeros(1, 2, 2), torch.zeros(1, 3, 3), 2)


def test_empty_targets_count_in_the_mean_unlike_monai_default():
    # image 0: nothing there, nothing predicted (1.0); image 1: a false alarm on an empty
    # target (0.0); image 2: the object found exactly (1.0)
    pred = masks([[0, 0, 0, 0]], [[1, 0, 0, 0]], [[0, 1, 1, 0]])
    target = masks([[0, 0, 0, 0]], [[0, 0, 0, 0]], [[0, 1, 1, 0]])
    counts = metrics.overlap_counts(pred, target, 2).numpy()
    dice, _ = metrics.scores_from_counts(counts)
    assert dice[:, 1].tolist() == [1.0, 0.0, 1.0]
    assert metrics.summarize(counts)["dice"] == 2 / 3  # every image counts
    # MONAI's DiceMetric (ignore_empty=True) sets NaN where the target is empty and drops
    # it: the recipe of the module notes gives its figure
    has_target = counts[:, 1, 2] > 0
    assert dice[has_target, 1].mean() == 1.0
