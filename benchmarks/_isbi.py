"""The ISBI 2012 EM segmentation challenge's metrics, for a cell-probability map.

Conventions (the challenge's Fiji code, ``trainableSegmentation.metrics``, read for
this, not copied): the truth is 0 on membranes and > 0 in cells; a proposal is a
probability of *cell* per pixel, binarised as ``p > threshold`` for thresholds 0.0,
0.1, ... (accumulated in floats exactly as its loop does, so the last one is just under
1.0), and the best threshold over the whole stack is reported.

* Pixel error: the fraction of pixels whose binarised class differs from the truth.
* Rand error (the "foreground-restricted Rand error" of the U-Net paper's table):
  1 - the F-score of the Rand index with n^2 normalisation, where segments are the
  4-connected components of cells (truth and proposal alike), only pixels in a true
  cell take part, and pixels the proposal calls membrane are each a segment of their
  own (singletons). Counts of several images add up before the F-score (a stack).
* Warping error (Jain et al. 2010): the truth is warped towards the binarised proposal
  by flipping, one at a time, pixels where they disagree and whose flip keeps the
  topology (simple points; cells 4-connected, membranes 8-connected), the most
  confident disagreement first; the pixels still disagreeing are topological errors
  (splits, mergers, holes, objects added or lost), counted over all pixels.

scikit-image's ``adapted_rand_error`` counts pairs of distinct pixels (n (n - 1)) and
takes a proposal's 0 label as one segment; with the proposal's membrane pixels
relabelled as singletons it agrees with :func:`foreground_rand_error` to about 1e-3
on 512 x 512 images, not exactly, so the challenge's formula is computed here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def thresholds(step: float = 0.1, low: float = 0.0, high: float = 1.0) -> list[float]:
    """The challenge's thresholds: ``th = low; while th <= high: ...; th += step``."""
    out, th = [], low
    while th <= high:
        out.append(th)
        th += step
    return out


THRESHOLDS = thresholds()


def segments(foreground: np.ndarray) -> np.ndarray:
    """4-connected components of ``foreground`` (1, 2, ...; 0 elsewhere), int32."""
    from scipy import ndimage as ndi

    labels, _ = ndi.label(np.asarray(foreground, bool))  # default structure: 4-connected
    return labels.astype(np.int32, copy=False)


def rand_counts(truth: np.ndarray, proposal: np.ndarray) -> tuple[int, int, int]:
    """``(sum_ij n_ij^2, sum_i a_i^2, sum_j b_j^2)`` over the pixels of true segments.

    Parameters
    ----------
    truth
        Segment labels of the truth, 0 = membrane (left out).
    proposal
        Segment labels of the proposal; its 0 pixels (membrane) are singletons, each
        adding 1 to ``sum n_ij^2`` and to ``sum b_j^2``.
    """
    truth, proposal = np.asarray(truth).ravel(), np.asarray(proposal).ravel()
    inside = truth > 0
    t, p = truth[inside].astype(np.int64), proposal[inside].astype(np.int64)
    singles = int((p == 0).sum())
    a = np.bincount(t)
    b = np.bincount(p[p > 0])
    _, n_ij = np.unique(t[p > 0] * (int(p.max(initial=0)) + 1) + p[p > 0], return_counts=True)
    return (
        int((n_ij.astype(np.int64) ** 2).sum()) + singles,
        int((a.astype(np.int64) ** 2).sum()),
        int((b.astype(np.int64) ** 2).sum()) + singles,
    )


def rand_fscore(sum_ab: float, sum_a: float, sum_b: float) -> float:
    """F-score of Rand precision ``sum_ab / sum_b`` and recall ``sum_ab / sum_a``."""
    precision, recall = sum_ab / sum_b, sum_ab / sum_a
    return 2.0 * precision * recall / (precision + recall)


def _best(by_threshold: dict[float, float]) -> dict:
    threshold = min(by_threshold, key=lambda th: (by_threshold[th], abs(th - 0.5)))
    half = min(by_threshold, key=lambda th: abs(th - 0.5))
    return {
        "error": by_threshold[threshold],
        "threshold": threshold,
        "at_half": by_threshold[half],
        "by_threshold": by_threshold,
    }


def foreground_rand_error(
    truths: Sequence[np.ndarray], probs: Sequence[np.ndarray], thresholds=THRESHOLDS
) -> dict:
    """The challenge's Rand error of a stack: ``error`` (the best threshold's, pooled
    over the images), ``threshold``, ``at_half`` (threshold 0.5) and ``by_threshold``.

    Parameters
    ----------
    truths
        Label images, 0 = membrane, > 0 = cell.
    probs
        Probability of cell per pixel, one map per truth.
    thresholds
        Binarisation thresholds (default the challenge's).
    """
    true_segments = [segments(np.asarray(t) > 0) for t in truths]
    by = {}
    for th in thresholds:
        counts = np.zeros(3, np.float64)
        for seg, prob in zip(true_segments, probs, strict=True):
            counts += rand_counts(seg, segments(np.asarray(prob) > th))
        by[float(th)] = 1.0 - rand_fscore(*counts)
    return _best(by)


def pixel_error(
    truths: Sequence[np.ndarray], probs: Sequence[np.ndarray], thresholds=THRESHOLDS
) -> dict:
    """Fraction of wrongly classed pixels over the stack, as
    :func:`foreground_rand_error` returns it (best threshold and at 0.5)."""
    truths = [np.asarray(t) > 0 for t in truths]
    total = sum(t.size for t in truths)
    by = {}
    for th in thresholds:
        wrong = sum(
            int(((np.asarray(p) > th) != t).sum()) for t, p in zip(truths, probs, strict=True)
        )
        by[float(th)] = wrong / total
    return _best(by)


# -- warping error --------------------------------------------------------------------
_RING = ((-1, -1), (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1))


def _components(members: list[int], adjacent) -> list[set[int]]:
    left, found = set(members), []
    while left:
        stack, comp = [left.pop()], set()
        while stack:
            i = stack.pop()
            comp.add(i)
            near = {j for j in left if adjacent(_RING[i], _RING[j])}
            left -= near
            stack.extend(near)
        found.append(comp)
    return found


def _simple_lut() -> np.ndarray:
    """``lut[code]``: is the centre simple for this 8-neighbourhood (bit k set when
    ring pixel k is a cell)? Cells 4-connected, membranes 8-connected: exactly one
    4-component of cells 4-adjacent to the centre and one 8-component of membrane."""

    def four(a, b):
        return abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1

    def eight(a, b):
        return max(abs(a[0] - b[0]), abs(a[1] - b[1])) == 1

    lut = np.zeros(256, bool)
    for code in range(256):
        cells = [k for k in range(8) if code >> k & 1]
        membrane = [k for k in range(8) if not code >> k & 1]
        touching = [c for c in _components(cells, four) if any(k % 2 for k in c)]
        lut[code] = len(touching) == 1 and len(_components(membrane, eight)) == 1
    return lut


SIMPLE = _simple_lut()


def warp_truth(truth: np.ndarray, proposal: np.ndarray, confidence=None) -> np.ndarray:
    """The truth (bool, True = cell) warped towards ``proposal`` (bool) by flipping
    simple points where they differ, most ``confidence`` first, until none can flip."""
    h, w = truth.shape
    x = np.zeros((h + 2, w + 2), bool)  # outside the image: membrane
    x[1:-1, 1:-1] = truth
    target = np.zeros_like(x)
    target[1:-1, 1:-1] = proposal
    order = np.zeros(x.shape, np.float64)
    if confidence is not None:
        order[1:-1, 1:-1] = confidence
    offsets = [(dy, dx) for dy, dx in _RING]
    while True:
        ys, xs = np.nonzero(x != target)
        if not len(ys):
            break
        rank = np.argsort(-order[ys, xs], kind="stable")
        flipped = 0
        for y, xx in zip(ys[rank].tolist(), xs[rank].tolist(), strict=True):
            code = 0
            for k, (dy, dx) in enumerate(offsets):
                if x[y + dy, xx + dx]:
                    code |= 1 << k
            if SIMPLE[code]:
                x[y, xx] = target[y, xx]
                flipped += 1
        if not flipped:
            break
    return x[1:-1, 1:-1]


def warping_error(
    truths: Sequence[np.ndarray], probs: Sequence[np.ndarray], threshold: float = 0.5
) -> dict:
    """Pixels still wrong after warping each truth towards its binarised proposal:
    ``errors`` (count over the stack) and ``error`` (over all pixels).

    Parameters
    ----------
    truths
        Label images, 0 = membrane, > 0 = cell.
    probs
        Probability of cell per pixel.
    threshold
        Binarisation of the proposal (``p > threshold`` is cell).
    """
    errors, total = 0, 0
    for truth, prob in zip(truths, probs, strict=True):
        prob = np.asarray(prob, np.float64)
        proposal = prob > threshold
        warped = warp_truth(np.asarray(truth) > 0, proposal, np.abs(prob - threshold))
        errors += int((warped != proposal).sum())
        total += proposal.size
    return {"errors": errors, "error": errors / total, "threshold": threshold}
