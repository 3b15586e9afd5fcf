"""Evaluation against ground truth: arrays in, numbers out.

Semantic metrics match unsupervised cluster ids to ground-truth classes with the
Hungarian method on the confusion matrix: one-to-one (the headline; a surplus
cluster is wrong) or many-to-one (surplus clusters merged into the class they
overlap most, which uses the truth and flatters over-segmentation).

Instance metrics match masks by IoU and report two different "AP"s:

- COCO AP (``coco_ap50``, ``coco_ap``): predictions ranked by score, greedily matched
  to the unmatched ground truth of highest IoU (>= the threshold), precision
  interpolated at 101 recall points; ``coco_ap`` averages IoU 0.50:0.05:0.95. Checked
  against pycocotools (segm, one category, all areas) in the tests.
- DSB 2018 score (``dsb_ap``, the Data Science Bowl 2018 nuclei metric):
  TP / (TP + FP + FN) at each IoU threshold (a match needs IoU above it), averaged
  over 0.50:0.05:0.95. No ranking, no interpolation; lower than COCO AP for the same
  masks because every false positive and every miss counts at every threshold.
"""

from __future__ import annotations

import numpy as np

from napari_samphase.core.errors import InputError

# COCO's IoU thresholds, built as pycocotools builds them so IoUs that land exactly
# on a threshold (0.75 = 12/16) compare the same way.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def _same_shape(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise InputError(f"prediction shape {a.shape} does not match ground truth {b.shape}")
    return a.astype(np.int64, copy=False), b.astype(np.int64, copy=False)


def confusion(pred, true, n_pred: int | None = None, n_true: int | None = None) -> np.ndarray:
    """C[i, j] = number of pixels predicted i whose true class is j."""
    pred, true = _same_shape(pred, true)
    n_pred = n_pred or int(pred.max(initial=0)) + 1
    n_true = n_true or int(true.max(initial=0)) + 1
    return np.bincount(pred.ravel() * n_true + true.ravel(), minlength=n_pred * n_true).reshape(
        n_pred, n_true
    )


def hungarian_match(conf: np.ndarray, many_to_one: bool = False) -> dict[int, int]:
    """pred id -> true class, one-to-one, maximising matched pixels.

    With more clusters than classes some predicted ids stay unmatched (absent from
    the result); ``many_to_one`` sends each of them to the class it overlaps most.
    """
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-conf)
    mapping = {int(r): int(c) for r, c in zip(rows, cols, strict=True)}
    if many_to_one:
        for r in range(conf.shape[0]):
            mapping.setdefault(r, int(np.argmax(conf[r])))
    return mapping


# matching name -> (conf -> pred id -> class), or None for ids that already are classes
MATCHINGS = {
    "one_to_one": hungarian_match,
    "many_to_one": lambda conf: hungarian_match(conf, many_to_one=True),
    None: None,
}


def semantic_metrics(
    pred, true, matching: str | None = "one_to_one", n_classes: int | None = None
) -> dict:
    """Pixel accuracy, per-class IoU and Dice, mIoU, mean |pred - true| (L1) and
    phase-fraction error (percentage points) of a class map against the truth.

    pred, true: integer maps of the same shape (true: classes 0..n_classes-1).
    matching: how predicted ids become classes.
        ``"one_to_one"`` (default, the headline): Hungarian assignment on the
        confusion matrix; ids left over (more clusters than classes) are listed in
        ``result["unmatched"]`` and their pixels count as wrong: a false negative of
        their true class, in no class's area, and in L1 as far from the truth as any
        class is.
        ``"many_to_one"``: the same assignment, then each left-over id joins the
        class it overlaps most. It uses the truth to merge clusters, so report it
        labelled as such, next to the one-to-one figure.
        ``None``: predicted ids are class ids already (supervised results).
    n_classes: number of classes (default: ``true.max() + 1``).

    Returns a dict; ``matching`` holds the pred id -> class mapping (None without
    matching).
    """
    if matching not in MATCHINGS:
        raise InputError(
            f"unknown matching {matching!r} (choose from {', '.join(map(repr, MATCHINGS))})"
        )
    pred, true = _same_shape(pred, true)
    n_classes = n_classes or int(true.max(initial=0)) + 1
    mapping, unmatched = None, []
    if MATCHINGS[matching] is not None:
        conf = confusion(pred, true, n_true=n_classes)
        ids = np.flatnonzero(conf.sum(1))  # only ids that occur take part
        found = MATCHINGS[matching](conf[ids])
        mapping = {int(ids[r]): c for r, c in found.items()}
        unmatched = [int(i) for i in ids if i not in mapping]
        # left-over ids become class n_classes: "no class", wrong everywhere
        lut = np.array([mapping.get(i, n_classes) for i in range(len(conf))])
        pred = lut[pred]
    conf = confusion(pred, true, max(n_classes, int(pred.max(initial=0)) + 1), n_classes)
    tp = np.diag(conf[:n_classes]).astype(np.float64)
    fp = conf[:n_classes].sum(1) - tp
    fn = conf.sum(0) - tp
    present = (tp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    total = conf.sum()
    frac_pred = 100.0 * conf[:n_classes].sum(1) / total
    frac_true = 100.0 * conf.sum(0) / total
    frac_err = np.abs(frac_pred - frac_true)
    # no-class pixels: the largest distance any class could have from the truth
    dist = np.where(pred < n_classes, np.abs(pred - true), np.maximum(true, n_classes - 1 - true))
    return {
        "pixel_accuracy": float(tp.sum() / total),
        "iou": iou,
        "dice": dice,
        "miou": float(np.nanmean(iou[present])),
        "mean_dice": float(np.nanmean(dice[present])),
        "l1": float(dist.mean()),
        "fraction_pred": frac_pred,
        "fraction_true": frac_true,
        "fraction_error": frac_err,
        "mean_fraction_error": float(frac_err[present].mean()),
        "matching": mapping,
        "unmatched": unmatched,
    }


def _compact(x: np.ndarray) -> np.ndarray:
    """Instance ids -> 1..n in sorted order, 0 stays background."""
    out = np.zeros(x.shape, np.int64)
    fg = x > 0
    out[fg] = np.searchsorted(np.unique(x[fg]), x[fg]) + 1
    return out


def instance_iou(pred, true) -> np.ndarray:
    """IoU matrix (n_pred x n_true) between instances (ids 1..), via one bincount."""
    pred, true = _same_shape(pred, true)
    pred, true = _compact(pred), _compact(true)
    n_p, n_t = int(pred.max(initial=0)) + 1, int(true.max(initial=0)) + 1
    inter = np.bincount(pred.ravel() * n_t + true.ravel(), minlength=n_p * n_t).reshape(n_p, n_t)
    area_p, area_t = inter.sum(1), inter.sum(0)
    union = area_p[:, None] + area_t[None, :] - inter
    return (inter / np.maximum(union, 1))[1:, 1:]


def _relabel(x):
    x = np.asarray(x)
    ids = np.unique(x)
    return ids[ids > 0]


def _max_matches(ok: np.ndarray) -> int:
    """Size of the largest one-to-one matching among the pairs marked in ``ok``."""
    rows, cols = np.flatnonzero(ok.any(1)), np.flatnonzero(ok.any(0))
    sub = ok[np.ix_(rows, cols)]
    if (sub.sum(1) <= 1).all() and (sub.sum(0) <= 1).all():
        return int(sub.sum())  # pairs are disjoint: always so above IoU 0.5
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(sub, maximize=True)
    return int(sub[r, c].sum())


def instance_metrics(pred, true, scores=None, thresholds=None) -> dict:
    """Instance masks against ground-truth instances (label images, 0 = background).

    pred, true: label images of the same shape.
    scores: one confidence per predicted instance, in the order of sorted ids
        (default: the area, larger first), for the COCO ranking.
    thresholds: IoU thresholds (default 0.50:0.05:0.95, as COCO).

    Returns:
        ``matched_iou``: mean IoU of the one-to-one matching of largest total IoU.
        ``precision50``, ``recall50``, ``f1_50``: from the largest one-to-one
        matching of pairs with IoU >= 0.5.
        ``coco_ap50``, ``coco_ap``, ``coco_ap_per_threshold``: COCO AP (ranked by
        score, greedy matching to the unmatched truth of highest IoU >= threshold,
        101-point interpolated precision) at IoU 0.5 and averaged over thresholds.
        ``dsb_ap``, ``dsb_ap_per_threshold``: the DSB 2018 score TP / (TP + FP + FN)
        with IoU above each threshold, averaged over thresholds.
    """
    pred, true = _same_shape(pred, true)
    thresholds = IOU_THRESHOLDS if thresholds is None else np.asarray(thresholds, float)
    iou = instance_iou(pred, true)
    n_p, n_t = iou.shape
    pred_ids = _relabel(pred)
    if scores is None:
        scores = np.bincount(pred.ravel())[pred_ids] if n_p else np.zeros(0)
    scores = np.asarray(scores, np.float64)
    if len(scores) != n_p:
        raise InputError(f"{len(scores)} scores for {n_p} predicted instances")
    from scipy.optimize import linear_sum_assignment

    if n_p and n_t:
        r, c = linear_sum_assignment(iou, maximize=True)
        matched = iou[r, c]
    else:
        matched = np.zeros(0)
    # The assignment of largest total IoU may trade a pair at 0.5+ for two weaker
    # ones, so the counts at 0.5 come from their own matching.
    tp50 = _max_matches(iou >= 0.5)
    order = np.argsort(-scores, kind="stable")  # pycocotools sorts the same way
    coco, dsb = [], []
    for t in thresholds:
        taken = np.zeros(n_t, bool)
        tp = np.zeros(n_p)
        for k, i in enumerate(order):
            if n_t == 0:
                break
            cand = np.where(taken, -1.0, iou[i])
            j = n_t - 1 - int(np.argmax(cand[::-1]))  # the last of equals, as COCO
            if cand[j] >= t:
                taken[j] = True
                tp[k] = 1
        coco.append(_coco_ap(tp, n_t))
        hits = _max_matches(iou > t)
        dsb.append(hits / (n_p + n_t - hits) if n_p + n_t else 1.0)
    keys = np.round(thresholds, 2).tolist()
    coco_per = dict(zip(keys, coco, strict=True))
    return {
        "n_pred": n_p,
        "n_true": n_t,
        "matched_iou": float(matched[matched > 0].mean()) if (matched > 0).any() else 0.0,
        "precision50": tp50 / n_p if n_p else 0.0,
        "recall50": tp50 / n_t if n_t else 0.0,
        "f1_50": 2 * tp50 / (n_p + n_t) if n_p + n_t else 0.0,
        "coco_ap50": coco_per.get(0.5, float("nan")),
        "coco_ap": float(np.mean(coco)) if coco else 0.0,
        "coco_ap_per_threshold": coco_per,
        "dsb_ap": float(np.mean(dsb)) if dsb else 0.0,
        "dsb_ap_per_threshold": dict(zip(keys, dsb, strict=True)),
    }


def _coco_ap(tp_ranked: np.ndarray, n_true: int) -> float:
    """COCO's 101-point interpolated AP of one ranked list of hits (1) and misses."""
    if n_true == 0:
        return float(len(tp_ranked) == 0)
    if len(tp_ranked) == 0:
        return 0.0
    ctp = np.cumsum(tp_ranked)
    recall = ctp / n_true
    precision = ctp / np.arange(1, len(tp_ranked) + 1)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # monotone envelope
    points = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, points, side="left")
    return float(
        np.where(idx < len(precision), precision[np.minimum(idx, len(precision) - 1)], 0.0).mean()
    )


def recovered_fraction(reference, candidates, thr: float = 0.9) -> float:
    """Share of ``reference`` boolean masks whose best match among ``candidates``
    (possibly overlapping masks, same shape) has IoU >= ``thr``."""
    reference = list(reference)
    if not reference:
        return float("nan")
    candidates = list(candidates)
    if not candidates:
        return 0.0
    flat = np.stack(candidates).reshape(len(candidates), -1)
    area = flat.sum(1)
    hits = 0
    for ref in reference:
        r = np.asarray(ref, bool).ravel()
        inter = flat[:, r].sum(1)
        hits += (inter / (area + r.sum() - inter)).max() >= thr
    return hits / len(reference)
