"""Per-pixel loss weights of the U-Net method:
``w(x) = w_c(x) + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))``.

``w_c`` balances the classes (each class carries the same total weight, whatever its
area). The second term, on background pixels only, stresses the thin gaps between
objects that nearly touch: ``d1`` and ``d2`` are the distances to the nearest and the
second-nearest object. It is cut to zero where it would be below
:data:`TERM_CUTOFF` x ``w0``, so only pixels within a few ``sigma`` of two objects
need it: each object's distance map is computed in a window around it, never over
the whole image (bounded cost for thousands of objects).
"""

from __future__ import annotations

import math

import numpy as np

TERM_CUTOFF = 1e-3  # border term below this fraction of w0 is taken as zero
W0 = 10.0  # the method's values
SIGMA = 5.0


def class_balance_weights(
    labels: np.ndarray, ignore: int | None = None, counts: dict | None = None
) -> np.ndarray:
    """``w_c``: the weight of each pixel's class, inversely proportional to how many
    pixels the class has, scaled so the mean over the labelled pixels is 1 when the
    counts are this image's; 0 on ``ignore`` pixels. H x W float32.

    Parameters
    ----------
    labels
        H x W class labels (any integer values; a bool mask is two classes).
    ignore
        Label value of unlabelled pixels, or None.
    counts
        ``{class value: pixels}`` to balance by instead of this image's own (e.g. over
        a whole training set); classes missing from it are balanced as absent (0 weight).
    """
    labels = np.asarray(labels)
    values, inverse, own = np.unique(labels, return_inverse=True, return_counts=True)
    labelled = values != ignore if ignore is not None else np.ones(len(values), bool)
    if counts is None:
        counts = dict(zip(values[labelled].tolist(), own[labelled].tolist(), strict=True))
    counts = {k: v for k, v in counts.items() if v > 0 and k != ignore}
    total, k = sum(counts.values()), len(counts)
    weight = np.array(
        [
            total / (k * counts[v]) if (ok and v in counts) else 0.0
            for v, ok in zip(values.tolist(), labelled, strict=True)
        ],
        np.float32,
    )
    return weight[inverse.reshape(labels.shape)]


def border_term(instances: np.ndarray, w0: float = W0, sigma: float = SIGMA) -> np.ndarray:
    """``w0 * exp(-(d1 + d2)**2 / (2 sigma**2))`` on background pixels (``instances ==
    0``), 0 on objects and where it is below ``TERM_CUTOFF * w0``. H x W float32.

    ``d1``, ``d2``: Euclidean distances (pixel centres) to the nearest and the second-
    nearest object; one object alone gives no term.

    Parameters
    ----------
    instances
        H x W instance labels, 0 = background, one id per object.
    w0, sigma
        Height and width (px) of the term.
    """
    from scipy import ndimage as ndi

    instances = np.asarray(instances)
    out = np.zeros(instances.shape, np.float32)
    if w0 <= 0 or not instances.any():
        return out
    # d1 + d2 beyond this gives less than the cutoff; then both d1, d2 <= reach
    reach = sigma * math.sqrt(2.0 * math.log(1.0 / TERM_CUTOFF))
    r = int(math.ceil(reach))
    d1 = np.full(instances.shape, np.inf, np.float32)
    d2 = np.full(instances.shape, np.inf, np.float32)
    h, w = instances.shape
    lab = instances.astype(np.int64, copy=False)
    for i, box in enumerate(ndi.find_objects(lab), 1):
        if box is None:
            continue
        ys = slice(max(box[0].start - r, 0), min(box[0].stop + r, h))
        xs = slice(max(box[1].start - r, 0), min(box[1].stop + r, w))
        # the whole object is in its window, so in-window distances are exact
        d = ndi.distance_transform_edt(lab[ys, xs] != i).astype(np.float32)
        a, b = d1[ys, xs], d2[ys, xs]
        d2[ys, xs] = np.minimum(b, np.maximum(a, d))
        d1[ys, xs] = np.minimum(a, d)
    s = d1 + d2
    near = (instances == 0) & (s <= reach)
    out[near] = w0 * np.exp(-(s[near] ** 2) / (2.0 * sigma**2))
    return out


def border_weights(
    instances: np.ndarray,
    w0: float = W0,
    sigma: float = SIGMA,
    class_weights: np.ndarray | None = None,
) -> np.ndarray:
    """The method's weight map ``w_c + border_term`` (H x W float32).

    Parameters
    ----------
    instances
        H x W instance labels, 0 = background.
    w0, sigma
        The border term's height and width (px); ``w0 = 0`` disables it.
    class_weights
        ``w_c`` (H x W); default :func:`class_balance_weights` of object vs background.
    """
    if class_weights is None:
        class_weights = class_balance_weights(np.asarray(instances) > 0)
    return np.asarray(class_weights, np.float32) + border_term(instances, w0, sigma)


def phase_weights(
    labels: np.ndarray,
    ignore: int | None = None,
    w0: float = W0,
    sigma: float = SIGMA,
    counts: dict | None = None,
    balanced: bool = True,
    instances: np.ndarray | None = None,
) -> np.ndarray:
    """Weights for a class label image (a phase map): :func:`class_balance_weights`
    plus :func:`border_term` of the objects: ``instances`` if given, else those the
    labels imply, each 4-connected region of a class other than the lowest one (the
    background: the matrix, a membrane).

    Sparse labels (any ``ignore`` pixel) get the class balance only: their regions
    are strokes, not objects, and their gaps are not borders. Ignored pixels weigh 0.

    Parameters
    ----------
    labels
        H x W class labels.
    ignore
        Label value of unlabelled pixels, or None.
    w0, sigma
        The border term (``w0 = 0``: off).
    counts
        Class pixel counts to balance by (default this image's).
    balanced
        False: every labelled pixel's class weight is 1 (no balancing).
    instances
        H x W instance labels (0 = background) for the border term, if known.
    """
    from napari_samphase.core.training.data import semantic_to_instances

    labels = np.asarray(labels)
    if balanced:
        weights = class_balance_weights(labels, ignore, counts)
    else:
        weights = np.ones(labels.shape, np.float32)
        if ignore is not None:
            weights[labels == ignore] = 0.0
    sparse = ignore is not None and bool((labels == ignore).any())
    if w0 <= 0 or sparse:
        return weights
    if instances is None:
        # shifted so the background is 0 and every other class a positive value
        instances = semantic_to_instances(labels.astype(np.int64) - int(labels.min()))
    return weights + border_term(instances, w0, sigma)
