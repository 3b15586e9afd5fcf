"""Evaluation against ground truth: arrays in, numbers out.

Semantic metrics match unsupervised cluster ids to ground-truth classes with the
Hungarian method on the confusion matrix; instance metrics match masks by IoU.
"""

from __future__ import annotations

import numpy as np

from napari_samphase.core.errors import InputError


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


def hungarian_match(conf: np.ndarray) -> dict[int, int]:
    """pred id -> true class maximising matched pixels. Unmatched predicted ids (more
    clusters than classes) go to the class they overlap most."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-conf)
    mapping = {int(r): int(c) for r, c in zip(rows, cols, strict=True)}
    for r in range(conf.shape[0]):
        if r not in mapping:
            mapping[r] = int(np.argmax(conf[r]))
    return mapping


def semantic_metrics(pred, true, match: bool = True, n_classes: int | None = None) -> dict:
    """Pixel accuracy, per-class IoU and Dice, mIoU, mean |pred - true| (L1) and
    phase-fraction error (percentage points), after Hungarian matching if ``match``."""
    pred, true = _same_shape(pred, true)
    n_classes = n_classes or int(true.max(initial=0)) + 1
    mapping = None
    if match:
        mapping = hungarian_match(confusion(pred, true, n_true=n_classes))
        lut = np.array([mapping.get(i, 0) for i in range(int(pred.max(initial=0)) + 1)])
        pred = lut[pred]
    conf = confusion(pred, true, n_classes, n_classes)
    tp = np.diag(conf).astype(np.float64)
    fp = conf.sum(1) - tp
    fn = conf.sum(0) - tp
    present = (tp + fn) > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(tp + fp + fn > 0, tp / (tp + fp + fn), np.nan)
        dice = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
    frac_pred = 100.0 * conf.sum(1) / conf.sum()
    frac_true = 100.0 * conf.sum(0) / conf.sum()
    frac_err = np.abs(frac_pred - frac_true)
    return {
        "pixel_accuracy": float(tp.sum() / conf.sum()),
        "iou": iou,
        "dice": dice,
        "miou": float(np.nanmean(iou[present])),
        "mean_dice": float(np.nanmean(dice[present])),
        "l1": float(np.abs(pred - true).mean()),
        "fraction_pred": frac_pred,
        "fraction_true": frac_true,
        "fraction_error": frac_err,
        "mean_fraction_error": float(frac_err[present].mean()),
        "matching": mapping,
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


def instance_metrics(pred, true, scores=None, thresholds=None) -> dict:
    """Matched IoU, precision/recall/F1 at IoU 0.5, AP50 and mean AP over 0.5:0.95.

    AP is COCO style: predictions ranked by ``scores`` (default: larger first) are
    greedily matched to the unmatched ground truth of highest IoU; precision is
    interpolated at 101 recall points.
    """
    pred, true = _same_shape(pred, true)
    thresholds = np.arange(0.5, 0.96, 0.05) if thresholds is None else np.asarray(thresholds)
    iou = instance_iou(pred, true)
    n_p, n_t = iou.shape
    pred_ids = _relabel(pred)
    if scores is None:
        scores = np.bincount(pred.ravel())[pred_ids] if n_p else np.zeros(0)
    scores = np.asarray(scores, np.float64)
    if len(scores) != n_p:
        raise InputError(f"{len(scores)} scores for {n_p} predicted instances")
    from scipy.optimize import linear_sum_assignment

    # One-to-one matching maximising IoU, for the matched-IoU and F1 numbers.
    if n_p and n_t:
        r, c = linear_sum_assignment(-iou)
        matched = iou[r, c]
    else:
        matched = np.zeros(0)
    tp50 = int((matched >= 0.5).sum())
    precision = tp50 / n_p if n_p else 0.0
    recall = tp50 / n_t if n_t else 0.0
    f1 = 2 * tp50 / (n_p + n_t) if n_p + n_t else 0.0
    order = np.argsort(-scores, kind="stable")
    aps = []
    for t in thresholds:
        taken = np.zeros(n_t, bool)
        tp = np.zeros(n_p)
        for k, i in enumerate(order):
            if n_t == 0:
                break
            cand = np.where(taken, -1.0, iou[i])
            j = int(np.argmax(cand))
            if cand[j] >= t:
                taken[j] = True
                tp[k] = 1
        aps.append(_coco_ap(tp, n_t))
    return {
        "n_pred": n_p,
        "n_true": n_t,
        "matched_iou": float(matched[matched > 0].mean()) if (matched > 0).any() else 0.0,
        "precision50": precision,
        "recall50": recall,
        "f1_50": f1,
        "ap50": float(aps[0]) if len(aps) else 0.0,
        "map": float(np.mean(aps)) if len(aps) else 0.0,
        "ap_per_threshold": dict(zip(np.round(thresholds, 2).tolist(), aps, strict=True)),
    }


def _coco_ap(tp_ranked: np.ndarray, n_true: int) -> float:
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
