"""Per-mask features, selectable by name (registry).

Every extractor maps (image, labels, ids, context) -> (n_masks x n_cols array, names).
Histogram tricks (one ``bincount`` over label x bin) keep 2,000 masks on a
2048 x 2048 image well under a second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import luma, to_rgb_uint8
from napari_samphase.core.image.labels import interior_labels

PERCENTILES = (10, 50, 90)


@dataclass
class FeatureContext:
    rgb: np.ndarray  # H x W x 3 uint8
    gray: np.ndarray  # H x W uint8
    labels: np.ndarray  # H x W int64
    ids: np.ndarray  # mask ids, n
    n_max: int  # labels.max() + 1
    interior: np.ndarray  # H x W: labels without their edge band (labels.interior_labels)
    points: np.ndarray | None = None  # n x 2 prompt points (row, col), if known
    embedding: np.ndarray | None = None  # C x h x w SAM embedding of the image, if known

    def per_label_hist(self, values: np.ndarray, bins: int) -> np.ndarray:
        """(n_max x bins) histogram of integer ``values`` per label, over each mask's
        interior."""
        flat = self.interior.ravel() * bins + values.ravel().astype(np.int64)
        return np.bincount(flat, minlength=self.n_max * bins).reshape(self.n_max, bins)


def _is_gray(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def _hist_stats(hist: np.ndarray, prefix: str):
    """mean, std and percentiles from per-label 256-bin histograms."""
    levels = np.arange(hist.shape[1], dtype=np.float64)
    count = hist.sum(1, keepdims=True).clip(min=1)
    mean = (hist * levels).sum(1) / count[:, 0]
    var = (hist * levels**2).sum(1) / count[:, 0] - mean**2
    cdf = np.cumsum(hist, 1) / count
    cols = [mean / 255, np.sqrt(var.clip(min=0)) / 255]
    names = [f"{prefix}mean", f"{prefix}std"]
    for p in PERCENTILES:
        cols.append((cdf < p / 100).sum(1) / 255)
        names.append(f"{prefix}p{p}")
    return np.stack(cols, 1), names


def feat_stats(ctx: FeatureContext):
    """Intensity statistics over the whole mask (per channel for colour images)."""
    channels = (
        [("", ctx.gray)]
        if _is_gray(ctx.rgb)
        else [(f"{c}_", ctx.rgb[..., i]) for i, c in enumerate("rgb")]
    )
    blocks, names = [], []
    for prefix, chan in channels:
        vals, n = _hist_stats(ctx.per_label_hist(chan, 256), prefix)
        blocks.append(vals[ctx.ids])
        names += n
    return np.concatenate(blocks, 1), names


def feat_prompt_color(ctx: FeatureContext):
    """The method's baseline: the colour at the mask's single prompt point."""
    pts = ctx.points if ctx.points is not None else interior_points(ctx.labels, ctx.ids)
    r = np.clip(np.round(pts[:, 0]).astype(int), 0, ctx.gray.shape[0] - 1)
    c = np.clip(np.round(pts[:, 1]).astype(int), 0, ctx.gray.shape[1] - 1)
    if _is_gray(ctx.rgb):
        return ctx.gray[r, c][:, None] / 255.0, ["prompt_gray"]
    return ctx.rgb[r, c] / 255.0, ["prompt_r", "prompt_g", "prompt_b"]


def feat_texture(ctx: FeatureContext):
    """Local binary pattern histogram (uniform, P=8, R=1) and edge-strength statistics."""
    from skimage.feature import local_binary_pattern

    lbp = local_binary_pattern(ctx.gray, 8, 1, method="uniform").astype(np.int64)  # 0..9
    hist = ctx.per_label_hist(lbp, 10)[ctx.ids].astype(np.float64)
    hist /= hist.sum(1, keepdims=True).clip(min=1)
    g = ctx.gray.astype(np.float32) / 255
    grad = np.hypot(ndi.sobel(g, 0), ndi.sobel(g, 1))
    lab = ctx.interior.ravel()
    cnt = np.bincount(lab, minlength=ctx.n_max).clip(min=1)
    gm = np.bincount(lab, grad.ravel(), ctx.n_max) / cnt
    gs = np.sqrt((np.bincount(lab, grad.ravel() ** 2, ctx.n_max) / cnt - gm**2).clip(min=0))
    cols = np.concatenate([hist, gm[ctx.ids, None], gs[ctx.ids, None]], 1)
    return cols, [f"lbp{i}" for i in range(10)] + ["grad_mean", "grad_std"]


def feat_shape(ctx: FeatureContext):
    """log area, eccentricity (from second moments, vectorised) and solidity (area over
    the area of the convex hull of the mask's pixel squares)."""
    from scipy.spatial import ConvexHull, QhullError

    lab = ctx.labels.ravel()
    rr, cc = np.indices(ctx.labels.shape)
    n = np.bincount(lab, minlength=ctx.n_max).astype(np.float64)
    cnt = n.clip(min=1)

    def mean(v):
        return np.bincount(lab, v.ravel().astype(np.float64), ctx.n_max) / cnt

    mr, mc = mean(rr), mean(cc)
    # pixel variance 1/12 per axis, as skimage's inertia tensor of pixel squares
    vr = mean(rr.astype(np.float64) ** 2) - mr**2 + 1 / 12
    vc = mean(cc.astype(np.float64) ** 2) - mc**2 + 1 / 12
    cov = mean(rr.astype(np.float64) * cc) - mr * mc
    half = np.sqrt(((vr - vc) / 2) ** 2 + cov**2)
    l1, l2 = (vr + vc) / 2 + half, ((vr + vc) / 2 - half).clip(min=0)
    ecc = np.sqrt(1 - l2 / np.maximum(l1, 1e-12))
    solidity = np.ones(ctx.n_max)
    slices = ndi.find_objects(ctx.labels)
    corners = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    for i in ctx.ids:
        sl = slices[i - 1]
        if sl is None:
            continue
        sub = ctx.labels[sl] == i
        # only pixels on the mask's border can be hull vertices
        edge = sub & ~ndi.binary_erosion(sub)
        pts = (np.argwhere(edge)[:, None, :] + corners[None]).reshape(-1, 2)
        try:
            solidity[i] = n[i] / ConvexHull(pts).volume
        except QhullError:  # a line of pixels: flat hull
            solidity[i] = 1.0
    out = np.stack([np.log(n[ctx.ids].clip(min=1)), ecc[ctx.ids], solidity[ctx.ids].clip(0, 1)], 1)
    return out, ["log_area", "eccentricity", "solidity"]


def feat_embedding(ctx: FeatureContext):
    """SAM image embedding averaged over each mask (needs a SAM session's embedding)."""
    if ctx.embedding is None:
        raise InputError(EMBEDDING_NEEDED)
    emb = np.asarray(ctx.embedding)
    c, eh, ew = emb.shape
    h, w = ctx.labels.shape
    # SAM pads the long side: the embedding grid covers max(h, w) square pixels.
    side = max(h, w)
    rr = np.minimum((np.arange(h) + 0.5) * eh / side, eh - 1).astype(int)
    cc = np.minimum((np.arange(w) + 0.5) * ew / side, ew - 1).astype(int)
    cell = (rr[:, None] * ew + cc[None, :]).ravel()
    flat = emb.reshape(c, -1)[:, cell]  # C x HW
    lab = ctx.labels.ravel()
    cnt = np.bincount(lab, minlength=ctx.n_max).clip(min=1)
    pooled = np.stack([np.bincount(lab, flat[k], ctx.n_max) / cnt for k in range(c)], 1)
    return pooled[ctx.ids], [f"emb{k}" for k in range(c)]


FEATURES: dict[str, Callable] = {
    "prompt_color": feat_prompt_color,
    "stats": feat_stats,
    "texture": feat_texture,
    "shape": feat_shape,
    "embedding": feat_embedding,
}

FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "prompt_color": ("prompt_color",),  # the method's baseline
    "intensity": ("stats",),
    "default": ("stats", "texture", "shape"),
    "full": ("stats", "texture", "shape", "embedding"),
}


def interior_points(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """For each mask, the pixel farthest from its border (row, col)."""
    dist = ndi.distance_transform_edt(labels > 0)
    # Distance to the nearest *other* label too: erode boundaries between touching masks.
    from skimage.segmentation import find_boundaries

    dist = np.where(find_boundaries(labels, mode="inner"), 0, dist)
    pos = ndi.maximum_position(dist, labels, ids)
    return np.asarray(pos, np.float64).reshape(-1, 2)


def resolve_feature_set(features) -> tuple[str, ...]:
    if isinstance(features, str):
        if features in FEATURE_SETS:
            return FEATURE_SETS[features]
        features = tuple(f.strip() for f in features.split("+"))
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        raise InputError(
            f"unknown feature(s) {', '.join(unknown)}: choose a set "
            f"({', '.join(FEATURE_SETS)}) or extractors joined by '+' ({', '.join(FEATURES)})"
        )
    return tuple(features)


def needs_embedding(features) -> bool:
    """Whether the feature set uses the SAM image embedding."""
    return "embedding" in resolve_feature_set(features)


EMBEDDING_NEEDED = "features with 'embedding' need a SAM image embedding: use a SAM model"


def embedding_for(features, session=None) -> np.ndarray | None:
    """The C x h x w embedding the feature set needs from ``session`` (a SAM session
    with an image set), None when it needs none; one error message everywhere."""
    if not needs_embedding(features):
        return None
    if session is None or getattr(session, "embedding", None) is None:
        raise InputError(EMBEDDING_NEEDED)
    return session.embedding_array()


def compute_features(image, labels, ids, features="default", points=None, embedding=None):
    """(n x F raw features, names, group index per column) for masks ``ids``."""
    rgb = to_rgb_uint8(image)
    labels = np.asarray(labels).astype(np.int64, copy=False)
    gray = luma(rgb.astype(np.float32))
    ctx = FeatureContext(
        rgb=rgb,
        gray=np.clip(gray + 0.5, 0, 255).astype(np.uint8),
        labels=labels,
        interior=interior_labels(labels),
        ids=np.asarray(ids, np.int64),
        n_max=int(labels.max(initial=0)) + 1,
        points=points,
        embedding=embedding,
    )
    blocks, names, groups = [], [], []
    for g, name in enumerate(resolve_feature_set(features)):
        vals, n = FEATURES[name](ctx)
        blocks.append(np.asarray(vals, np.float64))
        names += n
        groups += [g] * len(n)
    return np.concatenate(blocks, 1), names, np.asarray(groups)


# Relative weight of each extractor's group after standardisation. Shape counts half:
# segment-everything returns parts and wholes of the same particle, so size and
# outline vary within a phase more than intensity and texture do.
GROUP_WEIGHTS = {"shape": 0.5}


def group_weights(features) -> np.ndarray:
    """Weight per group index, for the groups :func:`compute_features` returns."""
    return np.array([GROUP_WEIGHTS.get(n, 1.0) for n in resolve_feature_set(features)])


def standardize(x: np.ndarray, groups: np.ndarray, mean=None, scale=None, weights=None):
    """Zero mean, unit variance per column, then each feature group scaled to equal
    total weight (so 10 LBP bins do not outvote one mean intensity), times its
    weight in ``weights`` (per group index)."""
    if mean is None:
        mean = x.mean(0)
        std = x.std(0)
        std[std < 1e-12] = 1.0
        size = np.bincount(groups)[groups]
        scale = std * np.sqrt(size)
        if weights is not None:
            scale = scale / np.asarray(weights, float)[groups]
    return (x - mean) / scale, mean, scale
