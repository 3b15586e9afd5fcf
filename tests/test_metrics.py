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
    m = semantic_metrics(pred, true, matching=None)
    assert m["pixel_accuracy"] == pytest.approx(7 / 8)
    assert m["iou"].tolist() == pytest.approx([3 / 4, 4 / 5])
    assert m["dice"].tolist() == pytest.approx([6 / 7, 8 / 9])
    assert m["miou"] == pytest.approx((3 / 4 + 4 / 5) / 2)
    assert m["l1"] == pytest.approx(1 / 8)
    assert m["fraction_error"].tolist() == pytest.approx([12.5, 12.5])


def test_surplus_clusters_are_wrong_one_to_one_and_merged_many_to_one():
    """Three clusters for two classes: cluster 2 (one pixel of class 0) has no class
    of its own. One-to-one (the headline) counts it wrong; many-to-one, which uses
    the truth to merge it into class 0, scores a perfect result."""
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    pred = np.array([0, 0, 0, 2, 1, 1, 1, 1])
    one = semantic_metrics(pred, true)  # matching="one_to_one" by default
    assert one["matching"] == {0: 0, 1: 1} and one["unmatched"] == [2]
    assert one["pixel_accuracy"] == pytest.approx(7 / 8)
    # class 0: tp 3, fn 1 (the surplus pixel), fp 0; class 1: perfect
    assert one["iou"].tolist() == pytest.approx([3 / 4, 1.0])
    assert one["miou"] == pytest.approx((3 / 4 + 1) / 2)
    assert one["dice"].tolist() == pytest.approx([6 / 7, 1.0])
    assert one["fraction_pred"].tolist() == pytest.approx([37.5, 50.0])
    assert one["mean_fraction_error"] == pytest.approx(6.25)
    assert one["l1"] == pytest.approx(1 / 8)  # the surplus pixel: as far as a class can be
    many = semantic_metrics(pred, true, matching="many_to_one")
    assert many["matching"] == {0: 0, 1: 1, 2: 0} and many["unmatched"] == []
    assert many["pixel_accuracy"] == 1.0 and many["miou"] == 1.0 and many["l1"] == 0.0


def test_fewer_clusters_than_classes_leave_a_class_empty():
    true = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 0, 1, 1, 1, 1])
    for matching in ("one_to_one", "many_to_one"):
        m = semantic_metrics(pred, true, matching=matching)
        assert m["iou"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    with pytest.raises(InputError, match="matching"):
        semantic_metrics(pred, true, matching="best")


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
    assert m["coco_ap50"] == pytest.approx(1.0)
    # at IoU 0.55 only the first is a match: precision 1 up to recall 0.5
    assert m["coco_ap_per_threshold"][0.55] == pytest.approx(51 / 101)
    # the false positive ranked first lowers AP50
    m2 = instance_metrics(pred, true, scores=[0.5, 0.4, 0.9])
    assert m2["coco_ap50"] < 1.0


def test_instances_without_background_pixels():
    pred = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])  # every pixel belongs to a mask
    m = instance_metrics(pred, pred)
    assert m["n_pred"] == 2 and m["coco_ap"] == pytest.approx(1.0)


def test_perfect_and_empty_instances():
    true = np.zeros((6, 6), int)
    true[1:3, 1:3] = 1
    true[4:6, 4:6] = 2
    m = instance_metrics(true * 3, true)
    assert m["coco_ap"] == pytest.approx(1.0) and m["f1_50"] == 1.0
    empty = instance_metrics(np.zeros_like(true), true)
    assert empty["recall50"] == 0 and empty["coco_ap"] == 0


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


def test_recall_at_50_counts_every_pair_above_half():
    """Maximising the summed IoU can trade a pair at IoU 0.504 for two pairs at 0.4
    and 0.24; precision/recall at 0.5 must still count the 0.504 pair."""
    true = np.zeros((14, 20), int)
    true[0:10, 0:10] = 1  # g: 100 px
    true[12, 0:19] = 2  # g': 19 px
    pred = np.zeros_like(true)
    pred[0:10, 0:6] = 1  # 60 px of g ...
    pred[12, 0:19] = 1  # ... and all of g': IoU 60/119 with g, 19/79 with g'
    pred[0:10, 6:10] = 2  # the rest of g: IoU 0.4
    m = instance_metrics(pred, true)
    assert m["recall50"] == 0.5 and m["precision50"] == 0.5 and m["f1_50"] == 0.5
    assert m["coco_ap50"] == pytest.approx(m["coco_ap_per_threshold"][0.5])


def test_iou_exactly_at_a_threshold_counts_as_coco_does():
    true = np.zeros((8, 8), int)
    true[0:4, 0:4] = 1
    pred = np.zeros_like(true)
    pred[0:4, 0:3] = 1  # IoU 12/16 = 0.75 exactly
    m = instance_metrics(pred, true)
    # COCO: IoU >= 0.75 matches at 0.75, not at 0.8
    assert m["coco_ap_per_threshold"][0.75] == 1.0
    assert m["coco_ap_per_threshold"][0.8] == 0.0
    assert m["coco_ap"] == pytest.approx(0.6)


def test_dsb_ap_hand_computed():
    """DSB 2018: TP / (TP + FP + FN) per IoU threshold (a match needs IoU above it),
    averaged over 0.5:0.95; no interpolation, no ranking."""
    true = np.zeros((10, 10), int)
    true[0:4, 0:4] = 1
    true[6:10, 6:10] = 2
    pred = np.zeros((10, 10), int)
    pred[0:4, 0:3] = 5  # IoU 0.75
    pred[6:8, 6:10] = 7  # IoU 0.5: not above 0.5
    pred[0:2, 8:10] = 9  # false positive
    m = instance_metrics(pred, true)
    per = m["dsb_ap_per_threshold"]
    # 0.5..0.7: one TP, two FP, one FN -> 1/4; from 0.75 on (0.75 is not above 0.75): 0
    assert [per[t] for t in (0.5, 0.55, 0.6, 0.65, 0.7)] == pytest.approx([0.25] * 5)
    assert [per[t] for t in (0.75, 0.8, 0.85, 0.9, 0.95)] == [0.0] * 5
    assert m["dsb_ap"] == pytest.approx(0.125)
    assert instance_metrics(true, true)["dsb_ap"] == 1.0
    assert instance_metrics(np.zeros_like(true), true)["dsb_ap"] == 0.0


def _random_instances(rng, shape=(96, 96), n=12):
    """Rectangles painted in turn (later ones cover earlier ones) as the truth; the
    prediction moves and resizes most of them, misses some and adds false ones."""
    true = np.zeros(shape, np.int32)
    for i in range(1, n + 1):
        r, c = rng.integers(0, shape[0] - 4), rng.integers(0, shape[1] - 4)
        hh, ww = rng.integers(4, 18, 2)
        true[r : r + hh, c : c + ww] = i
    pred = np.zeros(shape, np.int32)
    k = 0
    for i in np.unique(true[true > 0]):
        if rng.random() < 0.2:
            continue  # missed
        rows, cols = np.nonzero(true == i)
        dr, dc = rng.integers(-2, 3, 2)
        grow = rng.integers(-1, 2)
        r0, r1 = max(rows.min() + dr - grow, 0), rows.max() + 1 + dr + grow
        c0, c1 = max(cols.min() + dc - grow, 0), cols.max() + 1 + dc + grow
        k += 1
        pred[r0:r1, c0:c1] = k
    for _ in range(3):  # false positives
        r, c = rng.integers(0, shape[0] - 6), rng.integers(0, shape[1] - 6)
        k += 1
        pred[r : r + 6, c : c + 6] = k
    return pred, true


def _pycocotools_ap(pred, true, scores):
    """COCO's own segm AP per IoU threshold: one image, one category, all areas,
    no limit on detections."""
    import contextlib
    import io

    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def rle(m):
        r = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        r["counts"] = r["counts"].decode()
        return r

    h, w = true.shape
    gts = []
    for k, i in enumerate(np.unique(true[true > 0]), 1):
        seg = rle(true == i)
        area, bbox = float(mask_utils.area(seg)), mask_utils.toBbox(seg).tolist()
        gts.append(
            {
                "id": k,
                "image_id": 1,
                "category_id": 1,
                "segmentation": seg,
                "area": area,
                "bbox": bbox,
                "iscrowd": 0,
            }
        )
    dts = [
        {"image_id": 1, "category_id": 1, "segmentation": rle(pred == i), "score": float(s)}
        for i, s in zip(np.unique(pred[pred > 0]), scores, strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco = COCO()
        coco.dataset = {
            "images": [{"id": 1, "height": h, "width": w}],
            "categories": [{"id": 1, "name": "object"}],
            "annotations": gts,
        }
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(dts), iouType="segm")
        ev.params.maxDets = [len(dts)]
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    return dict(
        zip(
            np.round(ev.params.iouThrs, 2).tolist(),
            ev.eval["precision"][:, :, 0, 0, 0].mean(1),
            strict=True,
        )
    )


@pytest.mark.parametrize("seed", range(6))
def test_coco_ap_agrees_with_pycocotools(seed):
    rng = np.random.default_rng(seed)
    pred, true = _random_instances(rng)
    area = np.bincount(pred.ravel())[1:]
    area = area[area > 0]
    # random scores, and (seed 0) the default ranking by area, ties included
    scores = rng.random(len(area)) if seed else area
    m = instance_metrics(pred, true, scores=scores if seed else None)
    ref = _pycocotools_ap(pred, true, scores)
    assert 0.05 < ref[0.5] < 1.0  # a case where ranking and matching matter
    assert m["coco_ap_per_threshold"] == pytest.approx(ref, abs=1e-12)
    assert m["coco_ap50"] == pytest.approx(ref[0.5], abs=1e-12)
    assert m["coco_ap"] == pytest.approx(np.mean(list(ref.values())), abs=1e-12)
