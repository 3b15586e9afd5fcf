"""Panoptic Quality (PQ) of panoptic phase maps, as COCO panoptic defines it
(Kirillov et al., "Panoptic Segmentation", CVPR 2019).

Per category, a predicted and a true segment match when their IoU is above 0.5
(matches are then unique: no segment can overlap two disjoint ones by more than
half). IoU leaves out the predicted segment's void pixels (true segment id 0):
``inter / (area_pred + area_true - inter - void_in_pred)``. Unmatched true segments
are false negatives (FN); unmatched predicted segments false positives (FP),
except those more than half over void (or over a crowd region of their category),
which are ignored. Then, per category with any TP, FP or FN::

    PQ = sum(IoU of matches) / (TP + FP / 2 + FN / 2) = SQ * RQ
    SQ = sum(IoU of matches) / TP (0 without matches)
    RQ = TP / (TP + FP / 2 + FN / 2)

and PQ, SQ, RQ are the means over those categories: all of them, things only
(``pq_th``) and stuff only (``pq_st``). Over several images the counts add up
before the ratios are taken (:class:`PQCounts`), as COCO does for a dataset.

Unsupervised phase ids are not class ids: :func:`panoptic_quality_of_phases`
first matches them to the truth's categories on the pixels, as
:func:`~napari_samphase.core.evaluation.metrics.semantic_metrics` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.evaluation.metrics import MATCHINGS
from napari_samphase.core.outputs.panoptic import Panoptic, check_panoptic, panoptic_from_phases

MATCH_IOU = 0.5  # a match needs IoU above this
IGNORE_VOID = 0.5  # an unmatched prediction more than this fraction void is no FP


@dataclass
class PQCounts:
    """TP, FP, FN and summed match IoU per category id; add them over images."""

    tp: dict[int, int] = field(default_factory=dict)
    fp: dict[int, int] = field(default_factory=dict)
    fn: dict[int, int] = field(default_factory=dict)
    iou: dict[int, float] = field(default_factory=dict)
    categories: dict[int, dict] = field(default_factory=dict)  # id -> name, isthing

    def __add__(self, other: PQCounts) -> PQCounts:
        clash = [
            c
            for c in self.categories.keys() & other.categories.keys()
            if bool(self.categories[c].get("isthing", True))
            != bool(other.categories[c].get("isthing", True))
        ]
        if clash:
            raise InputError(
                f"category {clash[0]} is stuff in one image and things in another: choose "
                "the stuff phases once for every image (e.g. --stuff)"
            )
        out = PQCounts(categories={**other.categories, **self.categories})
        for name in ("tp", "fp", "fn", "iou"):
            a, b = getattr(self, name), getattr(other, name)
            setattr(out, name, {c: a.get(c, 0) + b.get(c, 0) for c in a.keys() | b.keys()})
        return out

    def __radd__(self, other) -> PQCounts:  # sum() starts from 0
        return self if isinstance(other, int) and other == 0 else other + self

    def _average(self, cats, suffix: str) -> dict:
        """Mean PQ, SQ, RQ over the categories of ``cats`` with any TP, FP or FN."""
        rows = [r for r in map(self.per_category, cats) if r["tp"] + r["fp"] + r["fn"]]
        out = {f"n{suffix}": len(rows)}
        for k in ("pq", "sq", "rq"):
            out[k + suffix] = float(np.mean([r[k] for r in rows])) if rows else float("nan")
        return out

    def per_category(self, c: int) -> dict:
        tp, fp, fn = self.tp.get(c, 0), self.fp.get(c, 0), self.fn.get(c, 0)
        iou = float(self.iou.get(c, 0.0))
        info = self.categories.get(c, {})
        row = {"name": info.get("name", str(c)), "isthing": bool(info.get("isthing", True))}
        row.update({"tp": tp, "fp": fp, "fn": fn, "iou": iou})
        denom = tp + 0.5 * fp + 0.5 * fn
        if denom == 0:  # in neither map: not counted
            return {**row, "pq": float("nan"), "sq": float("nan"), "rq": float("nan")}
        return {**row, "pq": iou / denom, "sq": iou / tp if tp else 0.0, "rq": tp / denom}

    def summary(self) -> dict:
        """PQ, SQ, RQ over all categories and over things (``_th``) and stuff
        (``_st``), the number of categories each averages (``n``, ``n_th``,
        ``n_st``), total TP/FP/FN and ``per_category`` {id: {name, isthing, pq, sq,
        rq, tp, fp, fn, iou}} (NaN ratios for categories in neither map)."""
        cats = sorted(self.categories.keys() | self.tp.keys() | self.fp.keys() | self.fn.keys())
        thing = {c: self.per_category(c)["isthing"] for c in cats}
        out = self._average(cats, "")
        out.update(self._average([c for c in cats if thing[c]], "_th"))
        out.update(self._average([c for c in cats if not thing[c]], "_st"))
        for k in ("tp", "fp", "fn"):
            out[k] = int(sum(getattr(self, k).values()))
        out["per_category"] = {c: self.per_category(c) for c in cats}
        return out


def _lut(info: list[dict], key: str, size: int, fill) -> np.ndarray:
    out = np.full(size, fill, dtype=type(fill))
    for s in info:
        out[int(s["id"])] = s[key]
    return out


def pq_counts(pred: Panoptic, truth: Panoptic, void_label: int = 0) -> PQCounts:
    """Match the segments of one image and count TP, FP, FN per category.

    Parameters
    ----------
    pred, truth : panoptic maps of the same shape (any object with ``segments``,
        ``info`` and ``categories`` as :class:`Panoptic` has them), both checked
        with :func:`check_panoptic`. Category ids must mean the same classes in
        both; ``isthing`` comes from the truth's categories where it lists them.
    void_label : segment id of void pixels in both maps (COCO: 0).
    """
    check_panoptic(pred, "prediction", void_label)
    check_panoptic(truth, "ground truth", void_label)
    p = np.asarray(pred.segments).astype(np.int64)
    t = np.asarray(truth.segments).astype(np.int64)
    if p.shape != t.shape:
        raise InputError(f"prediction shape {p.shape} does not match ground truth {t.shape}")
    cats = {
        int(c["id"]): {"name": c["name"], "isthing": bool(c["isthing"])} for c in pred.categories
    }
    cats.update(
        {int(c["id"]): {"name": c["name"], "isthing": bool(c["isthing"])} for c in truth.categories}
    )
    counts = PQCounts(categories=cats)
    size_p = max(int(p.max(initial=0)), void_label) + 1
    size_t = max(int(t.max(initial=0)), void_label) + 1
    cat_p = _lut(pred.info, "category_id", size_p, -1)
    cat_t = _lut(truth.info, "category_id", size_t, -2)  # -1/-2: no segment, never equal
    area_p = _lut(pred.info, "area", size_p, 0)
    area_t = _lut(truth.info, "area", size_t, 0)
    crowd_t = _lut(truth.info, "iscrowd", size_t, 0).astype(bool)
    pairs, inter = np.unique(t * size_p + p, return_counts=True)
    tid, pid = pairs // size_p, pairs % size_p
    # Pixels of each predicted segment that the truth leaves out: void, and crowd
    # regions of the segment's own category.
    left_out = np.zeros(size_p, np.int64)
    out_sel = (tid == void_label) | (crowd_t[tid] & (cat_t[tid] == cat_p[pid]))
    np.add.at(left_out, pid[out_sel], inter[out_sel])
    void_p = np.zeros(size_p, np.int64)
    np.add.at(void_p, pid[tid == void_label], inter[tid == void_label])
    cand = (tid != void_label) & (pid != void_label) & ~crowd_t[tid] & (cat_t[tid] == cat_p[pid])
    tid, pid, inter = tid[cand], pid[cand], inter[cand]
    iou = inter / (area_p[pid] + area_t[tid] - inter - void_p[pid])
    hit = iou > MATCH_IOU
    matched_t, matched_p = set(tid[hit].tolist()), set(pid[hit].tolist())
    for t_id, i in zip(tid[hit], iou[hit], strict=True):
        c = int(cat_t[t_id])
        counts.tp[c] = counts.tp.get(c, 0) + 1
        counts.iou[c] = counts.iou.get(c, 0.0) + float(i)
    for s in truth.info:
        if s["id"] not in matched_t and not s["iscrowd"]:
            c = int(s["category_id"])
            counts.fn[c] = counts.fn.get(c, 0) + 1
    for s in pred.info:
        if s["id"] in matched_p or left_out[s["id"]] / s["area"] > IGNORE_VOID:
            continue
        c = int(s["category_id"])
        counts.fp[c] = counts.fp.get(c, 0) + 1
    return counts


def panoptic_quality(pred: Panoptic, truth: Panoptic, void_label: int = 0) -> dict:
    """PQ, SQ, RQ (all, things, stuff) and per-category counts of one image.

    Parameters
    ----------
    pred, truth : panoptic maps whose category ids mean the same classes (see
        :func:`pq_counts`).
    void_label : segment id of void pixels (COCO: 0).

    Returns
    -------
    dict
        :meth:`PQCounts.summary`: ``pq``, ``sq``, ``rq``, ``pq_th``..., ``pq_st``...,
        ``n``..., ``tp``, ``fp``, ``fn``, ``per_category``.
    """
    return pq_counts(pred, truth, void_label).summary()


def match_phases(
    pred_phase: np.ndarray,
    truth: Panoptic,
    matching: str | None = "one_to_one",
    void_label: int = 0,
) -> tuple[np.ndarray, dict[int, int], list[int]]:
    """Predicted phase ids -> the truth's category ids, matched on the pixels the
    truth does not leave void (Hungarian method on the confusion matrix).

    Parameters
    ----------
    pred_phase : H x W predicted phase ids.
    truth : the ground truth panoptic map.
    matching : ``"one_to_one"`` (surplus phases stay unmatched), ``"many_to_one"``
        (surplus phases join the category they overlap most) or None (ids are
        category ids already).
    void_label : void segment id of ``truth``.

    Returns
    -------
    (mapped, mapping, unmatched)
        ``mapped``: the phase map in category ids, -1 for unmatched phases;
        ``mapping``: phase id -> category id; ``unmatched``: phase ids left over.
    """
    if matching not in MATCHINGS:
        raise InputError(
            f"unknown matching {matching!r} (choose from {', '.join(map(repr, MATCHINGS))})"
        )
    pred = np.asarray(pred_phase).astype(np.int64)
    seg = np.asarray(truth.segments).astype(np.int64)
    if pred.shape != seg.shape:
        raise InputError(f"prediction shape {pred.shape} does not match ground truth {seg.shape}")
    ids = np.unique(pred)
    if MATCHINGS[matching] is None:
        return pred, {int(i): int(i) for i in ids}, []
    cat_ids = np.array(sorted(int(c["id"]) for c in truth.categories), np.int64)
    cat_of_seg = _lut(truth.info, "category_id", max(int(seg.max(initial=0)), void_label) + 1, -1)
    cat = cat_of_seg[seg]
    keep = (seg != void_label) & (cat >= 0)
    pi = np.searchsorted(ids, pred[keep])
    ci = np.searchsorted(cat_ids, cat[keep])
    conf = np.bincount(pi * len(cat_ids) + ci, minlength=len(ids) * len(cat_ids))
    conf = conf.reshape(len(ids), len(cat_ids))
    rows = np.flatnonzero(conf.sum(1))  # phases only over void take no part
    found = MATCHINGS[matching](conf[rows]) if len(rows) and len(cat_ids) else {}
    mapping = {int(ids[rows[r]]): int(cat_ids[c]) for r, c in found.items()}
    unmatched = [int(i) for i in ids if int(i) not in mapping]
    lut = np.array([mapping.get(int(i), -1) for i in ids], np.int64)
    return lut[np.searchsorted(ids, pred)], mapping, unmatched


def panoptic_quality_of_phases(
    pred_phase: np.ndarray,
    pred_labels: np.ndarray | None,
    truth: Panoptic,
    matching: str | None = "one_to_one",
    void_label: int = 0,
) -> dict:
    """PQ of a predicted phase map and its instance masks against a panoptic truth.

    Parameters
    ----------
    pred_phase : H x W predicted phases (``NAME_phases.tif``).
    pred_labels : H x W predicted instance masks (``NAME_labels.tif``), or None
        (particles = connected components of thing phases).
    truth : ground truth panoptic map; its stuff categories are stuff in the
        prediction too.
    matching : how predicted phase ids become categories (:func:`match_phases`).
        Pixels of unmatched phases belong to no predicted segment: they count
        against the true segments they cover (missed pixels), not as false positives.
    void_label : void segment id of ``truth``.

    Returns
    -------
    dict
        :func:`panoptic_quality`'s keys, plus ``matching`` (phase -> category),
        ``unmatched`` (phase ids) and ``counts`` (the :class:`PQCounts`, to add up
        over images).
    """
    mapped, mapping, unmatched = match_phases(pred_phase, truth, matching, void_label)
    unmatched_id = int(max(mapped.max(initial=0), *(c["id"] for c in truth.categories), 0)) + 1
    mapped = np.where(mapped < 0, unmatched_id, mapped)
    names = {int(c["id"]): c["name"] for c in truth.categories}
    pred = panoptic_from_phases(
        mapped, pred_labels, stuff=truth.stuff_ids(), names=names, void=(unmatched_id,)
    )
    counts = pq_counts(pred, truth, void_label)
    return {**counts.summary(), "matching": mapping, "unmatched": unmatched, "counts": counts}


def panoptic_quality_arrays(
    pred_phase: np.ndarray,
    pred_labels: np.ndarray | None,
    true_phase: np.ndarray,
    true_labels: np.ndarray | None,
    stuff: Iterable[int] | None = None,
    matching: str | None = "one_to_one",
    void: Iterable[int] = (),
    names=None,
) -> dict:
    """PQ from plain arrays: phase maps and instance masks of prediction and truth.

    Parameters
    ----------
    pred_phase, pred_labels : predicted phases and instance masks (masks may be None).
    true_phase, true_labels : true phases and instances (e.g. ``make_micrograph``'s
        ``.phases`` and ``.instances``).
    stuff : true phases that are stuff (default: 0 when present, else the largest;
        see :func:`~napari_samphase.core.outputs.panoptic.default_stuff`).
    matching : how predicted phase ids become true phases (:func:`match_phases`);
        None when they are true phase ids already.
    void : true phases that are void (unlabelled).
    names : category names by true phase id.

    Returns
    -------
    dict
        As :func:`panoptic_quality_of_phases`.
    """
    truth = panoptic_from_phases(true_phase, true_labels, stuff=stuff, names=names, void=void)
    return panoptic_quality_of_phases(pred_phase, pred_labels, truth, matching)
