import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.evaluation.metrics import (
    confusion,
    hungarian_match,
    instance_iou,
    instance_metrics,
    semantic_metrics,
)


def test_confusion_and_hungarian_on_permuted_labels():
    true = np.array([[0, 0, 1, 1], [2, 2, 1, 1]])
    pred = np.array([[2, 2, 0, 0], [1, 1, 0, 0]])  # same partition, other ids
    c = confusion(pred, true)
    assert c.tolist() == [[0, 4, 0], [0, 0, 2], [2, 0, 0]]
    assert hungarian_match(c) == {0: 1, 1: 2, 2: 0}
    m = semantic_metrics(pred, true)
    assert m["pixel_accuracy"] == 1.0 and m["miou"] == 1.0 and m["l1"] == 0.0
    assert m["mean_fraction_error"] == 0.0


def test_semantic_metrics_hand_computed():
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 1, 1, 1, 1, 1])
    m = semantic_metrics(pred, true, match=False)
    assert m["pixel_accuracy"] == pytest.approx(7 / 8)
    assert m["iou"].tolist() == pytest.approx([3 / 4, 4 / 5])
    assert m["dice"].tolist() == pytest.approx([6 / 7, 8 / 9])
    assert m["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert m["l1"] == pytest.approx(1 / 8)
    assert m["fraction_error"].tolist() == pytest.approx([12.5, 12.5])


def test_more_clusters_than_classes_map_to_best_overlap():
    true = np.array([0, 0, 0, 1, 1, 1])
    pred = np.array([0, 0, 2, 1, 1, 1])
    m = semantic_metrics(pred, true)
    assert m["matching"] == {0: 0, 1: 1, 2: 0}
    assert m["pixel_accuracy"] == 1.0


def test_instance_metrics_hand_computed():
    true = np.zeros((10, 10), int)
    true[0:4, 0:4] = 1  # 16 px
    true[6:10, 6:10] = 2  # 16 px
    pred = np.zeros((10, 10), int)
    pred[0:4, 0:3] = 5  # IoU 12/16 with 1
    pred[6:8, 6:10] = 7  # IoU 8/16 with 2 (exactly 0.5)
    pred[0:2, 8:10] = 9  # false positive
    iou = instance_iou(pred, true)
    assert iou.shape == (3, 2)
    assert iou[0, 0] == pytest.approx(0.75) and iou[1, 1] == pytest.approx(0.5)
    m = instance_metrics(pred, true)
    assert m["n_pred"] == 3 and m["n_true"] == 2
    assert m["precision50"] == pytest.approx(2 / 3) and m["recall50"] == 1.0
    assert m["f1_50"] == pytest.approx(0.8)
    assert m["matched_iou"] == pytest.approx((0.75 + 0.5) / 2)
    # ranked by area: 12 px (tp), 8 px (tp), 4 px (fp) -> precision 1 up to recall 1
    assert m["ap50"] == pytest.approx(1.0)
    # at IoU 0.55 only the first is a match: precision 1 up to recall 0.5
    assert m["ap_per_threshold"][0.55] == pytest.approx(51 / 101)
    # the false positive ranked first lowers AP50
    m2 = instance_metrics(pred, true, scores=[0.5, 0.4, 0.9])
    assert m2["ap50"] < 1.0


def test_instances_without_background_pixels():
    pred = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])  # every pixel belongs to a mask
    m = instance_metrics(pred, pred)
    assert m["n_pred"] == 2 and m["map"] == pytest.approx(1.0)


def test_perfect_and_empty_instances():
    true = np.zeros((6, 6), int)
    true[1:3, 1:3] = 1
    true[4:6, 4:6] = 2
    m = instance_metrics(true * 3, true)
    assert m["map"] == pytest.approx(1.0) and m["f1_50"] == 1.0
    empty = instance_metrics(np.zeros_like(true), true)
    assert empty["recall50"] == 0 and empty["map"] == 0


def test_recovered_fraction():
    from napari_samphase.core.evaluation.metrics import recovered_fraction

    a = np.zeros((10, 10), bool)
    a[:5] = True
    b = np.zeros((10, 10), bool)
    b[5:] = True
    almost = a.copy()
    almost[4, :] = False  # IoU 40/50 = 0.8
    assert recovered_fraction([a, b], [a, b]) == 1.0
    assert recovered_fraction([a, b], [almost, b]) == 0.5
    assert recovered_fraction([a, b], [almost, b], thr=0.8) == 1.0
    assert recovered_fraction([a], []) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(InputError, match="does not match"):
        semantic_metrics(np.zeros((3, 3)), np.zeros((3, 4)))
