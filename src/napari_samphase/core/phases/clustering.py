"""Grouping masks into material phases: k-means over per-mask features, K given or
chosen by silhouette, background handling, and few-click steering.

Phase ids: 0 = background (pixels in no mask); masks get 1..n_phases.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from napari_samphase.core.errors import InputError, check_choice
from napari_samphase.core.image.convert import check_image, to_gray_float
from napari_samphase.core.image.labels import check_labels, surrounding_mask
from napari_samphase.core.phases.classifier import CLASSIFIERS, check_every_phase, fit_phases
from napari_samphase.core.phases.features import compute_features, group_weights, standardize
from napari_samphase.core.phases.query import phase_lut

BACKGROUND_MODES = ("class", "ignore", "masks")
# With background="class" the background (the matrix, in the method's convention)
# counts in K. When segment-everything masked the matrix too, the mask that surrounds
# the others is the background: k-means over masks cannot reliably give that one mask
# a phase of its own (the parts of one textured phase outvote it). Pixels in no mask
# count in K only when the background covers at least this fraction of the image:
# below it they are the slivers segment-everything leaves between masks.
MIN_BACKGROUND = 0.05
# k-means restarts: with a phase of a few masks next to one spread over many parts
# (a textured phase that segment-everything cuts up), 4 restarts regularly missed
# the best split on generated micrographs; the fit stays milliseconds at 2,000 masks.
N_INIT = 16


def check_background(mode: str) -> str:
    """``mode`` if it is one of :data:`BACKGROUND_MODES`; one clear error otherwise."""
    return check_choice(mode, BACKGROUND_MODES, "background")


@dataclass
class PhaseModel:
    """Fitted standardisation and centres: assigns new masks to phases."""

    mean: np.ndarray
    scale: np.ndarray
    centers: np.ndarray  # n_phases x F, standardised space; row i = phase phase_ids[i]
    phase_ids: np.ndarray
    features: object
    groups: np.ndarray

    def assign(self, raw: np.ndarray) -> np.ndarray:
        z, _, _ = standardize(raw, self.groups, self.mean, self.scale)
        d = ((z[:, None, :] - self.centers[None]) ** 2).sum(-1)
        return self.phase_ids[np.argmin(d, 1)]


@dataclass
class PhaseResult:
    mask_ids: np.ndarray  # n
    phase_of_mask: np.ndarray  # n, values in 1..n_phases
    phase_labels: np.ndarray  # H x W, 0 = background
    labels: np.ndarray  # H x W instance labels used (background masks added in "masks" mode)
    features: np.ndarray  # n x F raw
    feature_names: list[str]
    model: PhaseModel
    k: int  # number of phases including background when it counts
    background: str
    fixed: dict[int, int] = field(default_factory=dict)  # mask id -> phase, kept on re-runs
    silhouette: dict[int, float] = field(default_factory=dict)  # K -> score (auto K)

    @property
    def n_phases(self) -> int:
        return int(self.phase_of_mask.max(initial=0))

    def phase_lut(self) -> np.ndarray:
        """Phase of every mask id (index = id, 0 for background and absent ids)."""
        return phase_lut(self.mask_ids, self.phase_of_mask, int(self.labels.max(initial=0)))

    def phase_of(self, ids) -> np.ndarray:
        """Phase of each of ``ids``; 0 for ids this clustering never saw (added since)."""
        lut = self.phase_lut()
        ids = np.asarray(ids, np.int64)
        return np.where(ids < len(lut), lut[np.minimum(ids, len(lut) - 1)], 0)


def _kmeans(z: np.ndarray, k: int, seed: int):
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=N_INIT, random_state=seed).fit(z)
    return km.labels_, km.cluster_centers_


def _seeded_kmeans(z, k, fixed_idx, fixed_cls, seed, iters=100):
    """Lloyd's k-means whose fixed points never change cluster. Clusters with examples
    stay at their examples' mean (one example per phase must not be outvoted by a
    drifting majority); the rest start by k-means++ and move as usual."""
    from sklearn.cluster import kmeans_plusplus

    centers = np.zeros((k, z.shape[1]))
    seeded = np.unique(fixed_cls)
    for c in seeded:
        centers[c] = z[fixed_idx[fixed_cls == c]].mean(0)
    free = [c for c in range(k) if c not in set(seeded.tolist())]
    if free:
        # Spread the free centres over points far from the seeded ones.
        if len(seeded):
            d = ((z[:, None] - centers[seeded][None]) ** 2).sum(-1).min(1)
            pool = z[np.argsort(d)[len(z) // 2 :]] if len(z) >= 2 * len(free) else z
        else:
            pool = z
        init, _ = kmeans_plusplus(pool, len(free), random_state=seed)
        centers[free] = init
    anchored = set(seeded.tolist())
    lab = np.zeros(len(z), int)
    for _ in range(iters):
        d = ((z[:, None] - centers[None]) ** 2).sum(-1)
        new = np.argmin(d, 1)
        new[fixed_idx] = fixed_cls
        if np.array_equal(new, lab) and _ > 0:
            break
        lab = new
        for c in range(k):
            if c in anchored:  # a user's examples define their phase: it does not drift
                continue
            if (lab == c).any():
                centers[c] = z[lab == c].mean(0)
    return lab, centers


def _classifier_fit(name: str):
    """A classifier of :data:`CLASSIFIERS` as an assignment method: phases from the
    examples, and as centres the mean of each phase's masks (what
    :meth:`PhaseModel.assign` uses for masks added later)."""

    def fit(z, k, fixed_idx, fixed_cls, seed):
        lab = fit_phases(z, fixed_idx, fixed_cls, name, seed)
        centers = np.stack([z[lab == c].mean(0) for c in range(k)])
        return lab, centers

    return fit


@dataclass(frozen=True)
class AssignMethod:
    """How masks get phases from the user's examples ("assign" clicks)."""

    # (z, k, example rows, their 0-based phases, seed) -> (0-based phase per row,
    # k x F centres in z space)
    fit: Callable[..., tuple[np.ndarray, np.ndarray]]
    needs_every_phase: bool  # refuses examples that leave a phase without one
    help: str


ASSIGN_METHODS: dict[str, AssignMethod] = {
    "kmeans": AssignMethod(
        _seeded_kmeans,
        False,
        "k-means with each phase centre fixed on its examples; phases without one are found",
    ),
    "forest": AssignMethod(
        _classifier_fit("forest"),
        True,
        "random forest on the examples' features: learns which features tell phases apart",
    ),
    "spreading": AssignMethod(
        _classifier_fit("spreading"),
        True,
        "label spreading over the masks' nearest-neighbour graph in feature space",
    ),
}
AUTO_ASSIGN = "auto"
# The classifier "auto" uses when every phase has an example (docs/benchmarks.md,
# section clicks); with a phase left without one it uses "kmeans".
AUTO_CLASSIFIER = "forest"
ASSIGN_METHOD_NAMES = (AUTO_ASSIGN, *ASSIGN_METHODS)


def resolve_assign_method(method: str, phases, n_phases: int) -> str:
    """The method of :data:`ASSIGN_METHODS` that runs for ``method`` with examples
    naming ``phases`` (1-based) among ``n_phases``: "auto" is the classifier when
    every phase has an example, anchored k-means otherwise."""
    check_choice(method, ASSIGN_METHOD_NAMES, "assign method")
    if method == AUTO_ASSIGN:
        covered = not len(set(range(1, n_phases + 1)) - set(np.asarray(phases).tolist()))
        return AUTO_CLASSIFIER if covered else "kmeans"
    return method


def choose_k(z: np.ndarray, k_range=(2, 8), seed: int = 0) -> tuple[int, dict[int, float]]:
    """K with the best silhouette (sampled to 3,000 masks for speed)."""
    from sklearn.metrics import silhouette_score

    lo, hi = k_range
    hi = min(hi, len(z) - 1)
    if hi < lo:
        raise InputError(f"too few masks ({len(z)}) to choose K automatically")
    scores = {}
    for k in range(lo, hi + 1):
        lab, _ = _kmeans(z, k, seed)
        if len(np.unique(lab)) < 2:
            continue
        scores[k] = float(
            silhouette_score(z, lab, sample_size=min(len(z), 3000), random_state=seed)
        )
    best = max(scores, key=scores.get) if scores else lo
    return best, scores


def _background_masks(labels: np.ndarray) -> np.ndarray:
    """Connected background regions become masks with new ids (``background="masks"``)."""
    from skimage.measure import label as cc

    bg = cc(labels == 0, connectivity=1)
    out = labels.astype(np.int64, copy=True)
    sel = bg > 0
    out[sel] = bg[sel] + int(labels.max(initial=0))
    return out


def find_phases(
    image: np.ndarray,
    labels: np.ndarray,
    k: int | str = 3,
    features="default",
    background: str = "class",
    examples: dict[int, int] | None = None,
    fixed: dict[int, int] | None = None,
    k_range: tuple[int, int] = (2, 8),
    points: np.ndarray | None = None,
    embedding: np.ndarray | None = None,
    seed: int = 0,
    min_background: float = MIN_BACKGROUND,
    assign_method: str = "kmeans",
) -> PhaseResult:
    """Group the masks of ``labels`` into phases.

    k: number of phases, or "auto" (silhouette over ``k_range``). With
    ``background="class"`` (the method's convention) the background is phase 0 and
    counts in K when it covers at least ``min_background`` of the image (less is
    the slivers segment-everything leaves between masks, not a phase). It is the
    pixels in no mask and, when segment-everything masked the matrix too, the mask
    that surrounds the others
    (:func:`~napari_samphase.core.image.labels.surrounding_mask`; unless an example
    or hand assignment names it), which ``result.labels`` holds as 0. "ignore" does
    not count the background; "masks" turns background regions into masks that are
    clustered like the others. Pixels in no mask are phase 0 in every mode.
    examples / fixed: mask id -> phase id (1-based). Examples steer the centres;
    both are kept in their phase, and ``fixed`` is carried into the result so a
    re-clustering keeps hand-made assignments.
    assign_method: how examples and fixed masks give the others their phase, one
    of :data:`ASSIGN_METHOD_NAMES`: "kmeans" (default: centres anchored on the
    examples), "forest" or "spreading" (a classifier trained on them,
    :mod:`~napari_samphase.core.phases.classifier`; every phase needs an example,
    and with ``k="auto"`` the phases are those the examples name), or "auto" (the
    classifier when every phase has an example, "kmeans" otherwise).
    points: prompt point (row, col) per mask id in sorted order, for "prompt_color".
    Unsupervised phase ids follow the mean image intensity of their masks (phase 1
    is the darkest), whatever the features.
    """
    image = check_image(image)
    labels = check_labels(labels, image.shape)
    check_background(background)
    check_choice(assign_method, ASSIGN_METHOD_NAMES, "assign method")
    if background == "masks" and (labels == 0).any():
        labels = _background_masks(labels)
    pinned = {int(m): int(p) for m, p in {**(examples or {}), **(fixed or {})}.items()}
    if background == "class":
        matrix = surrounding_mask(labels)
        if matrix and matrix not in pinned:  # a hand assignment says it is a phase
            if points is not None:  # one row per mask id, in sorted order
                present = np.unique(labels)
                points = np.delete(points, np.searchsorted(present[present > 0], matrix), 0)
            labels = np.where(labels == matrix, 0, labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if len(ids) == 0:
        raise InputError("the label image has no masks: nothing to group into phases")
    bg_fraction = float((labels == 0).mean())
    bad = [m for m in pinned if m not in set(ids.tolist())]
    if bad:
        raise InputError(f"mask id(s) {bad} are not in the label image")
    if any(p < 1 for p in pinned.values()):
        raise InputError("phase ids of examples start at 1 (0 is the background)")
    learns = assign_method in CLASSIFIERS
    if learns and not pinned:
        raise InputError(
            f"assign method {assign_method!r} learns from assigned masks: "
            "assign at least one mask per phase"
        )
    raw, names, groups = compute_features(image, labels, ids, features, points, embedding)
    z, mean, scale = standardize(raw, groups, weights=group_weights(features))
    silhouette = {}
    counts_bg = background == "class" and bg_fraction > 0 and bg_fraction >= min_background
    if isinstance(k, str):
        if k != "auto":
            raise InputError(f"K must be a whole number or 'auto', got {k!r}")
        if learns:  # a classifier finds the phases it was shown, no others
            k_masks = max(pinned.values())
        else:
            k_masks, silhouette = choose_k(z, k_range, seed)
            k_masks = max(k_masks, max(pinned.values(), default=0))
        k_total = k_masks + counts_bg
    else:
        k_total = int(k)
        k_masks = k_total - counts_bg
        if k_masks < 1:
            raise InputError(f"K={k} leaves no phase for the masks (background counts in K)")
        if k_masks > len(ids):
            raise InputError(f"K={k} is larger than the number of masks ({len(ids)})")
        if pinned and max(pinned.values()) > k_masks:
            raise InputError(
                f"an example names phase {max(pinned.values())} but K gives only "
                f"{k_masks} mask phases"
            )
    # Phase ids follow the mean image intensity of their masks' pixels (phase 1 the
    # darkest), whatever the features are.
    gray = to_gray_float(image)
    n_px = np.bincount(labels.ravel(), minlength=int(labels.max()) + 1)[ids]
    gray_sum = np.bincount(labels.ravel(), gray.ravel(), int(labels.max()) + 1)[ids]

    def brightness(lab, clusters):
        total = np.array([gray_sum[lab == c].sum() for c in clusters])
        count = np.array([n_px[lab == c].sum() for c in clusters])
        return np.where(count > 0, total / np.maximum(count, 1), np.inf)

    if pinned:
        index = {int(m): j for j, m in enumerate(ids)}
        fidx = np.array([index[m] for m in pinned], int)
        fcls = np.array(list(pinned.values()), int) - 1
        method = resolve_assign_method(assign_method, fcls + 1, k_masks)
        if ASSIGN_METHODS[method].needs_every_phase:
            check_every_phase(fcls + 1, k_masks, f"assign method {method!r}")
        lab, centers = ASSIGN_METHODS[method].fit(z, k_masks, fidx, fcls, seed)
        order = np.arange(k_masks)  # user-visible ids stay what the user chose
        seeded = set(fcls.tolist())
        free = np.array([c for c in range(k_masks) if c not in seeded], int)
        if len(free):  # unseeded clusters: ids by mean intensity, after the seeded ones
            order[free[np.argsort(brightness(lab, free), kind="stable")]] = free
    else:
        lab, centers = _kmeans(z, k_masks, seed)
        order = np.empty(k_masks, int)
        order[np.argsort(brightness(lab, range(k_masks)), kind="stable")] = np.arange(k_masks)
    phase = order[lab] + 1
    centers_sorted = np.zeros_like(centers)
    centers_sorted[order] = centers
    model = PhaseModel(mean, scale, centers_sorted, np.arange(1, k_masks + 1), features, groups)
    lut = phase_lut(ids, phase, int(labels.max()))
    dtype = np.uint8 if k_masks < 255 else np.uint16
    return PhaseResult(
        mask_ids=ids,
        phase_of_mask=phase,
        phase_labels=lut[labels].astype(dtype),
        labels=labels,
        features=raw,
        feature_names=names,
        model=model,
        k=k_masks + counts_bg,
        background=background,
        fixed=dict(fixed or {}),
        silhouette=silhouette,
    )
