"""Phases of pixels, not of masks: k-means over per-pixel multiscale features.

Mask-based phase maps (a proposer's masks, then k-means over per-mask features)
fit particles in a matrix. Where phases are textures (pearlite lamellae among
ferrite, two domains of equal mean gray), networks or cracks, there are no
particles to propose; clustering pixels on features that describe their
neighbourhood at several scales works instead.

Features per pixel (float32 planes, registry :data:`PIXEL_FEATURES`):

- ``gray``: the luminance itself (the pixel-intensity k-means baseline);
- ``intensity``: the luminance smoothed at each scale;
- ``texture``: log local energy of a difference-of-Gaussians band at each scale
  (fine speckle vs coarse mottling vs flat);
- ``coherence``: how strongly oriented the neighbourhood is (structure tensor),
  independent of the orientation (lamellae of any direction are one phase).

Columns are standardised and each group scaled to equal weight (the same
standardisation as the per-mask features). k-means is fitted on a random sample
of pixels and predicted for every pixel in blocks, so a 2048 x 2048 image costs
about its feature planes in memory (F x 16 MiB). The distance to every centre can
be smoothed before the arg-min, and components smaller than ``min_area`` are
absorbed by their surroundings. The result is a :class:`PhaseResult`: phase ids
1..K ordered by mean intensity (1 darkest), and instance labels = the connected
components of each phase, so the same-phase query works unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import check_image, to_gray_float
from napari_samphase.core.phases.clustering import PhaseModel, PhaseResult, choose_k
from napari_samphase.core.phases.features import standardize
from napari_samphase.core.phases.query import phase_lut
from napari_samphase.core.progress import ProgressCallback, report

Planes = tuple[list[np.ndarray], list[str]]


def _gray(g: np.ndarray, scales) -> Planes:
    return [g], ["gray"]


def _intensity(g: np.ndarray, scales) -> Planes:
    return [ndi.gaussian_filter(g, s) for s in scales], [f"intensity_s{s:g}" for s in scales]


def _texture(g: np.ndarray, scales) -> Planes:
    """log RMS, over a window of 2 x scale, of the band between scale/2 and scale."""
    planes = []
    for s in scales:
        band = ndi.gaussian_filter(g, s / 2) - ndi.gaussian_filter(g, s)
        planes.append(np.log(np.sqrt(ndi.gaussian_filter(band * band, 2 * s)) + 1e-3))
    return planes, [f"texture_s{s:g}" for s in scales]


def _coherence(g: np.ndarray, scales) -> Planes:
    """Structure-tensor coherence (0 isotropic .. 1 one orientation), gradients at
    scale/2, integrated over 2 x scale; the two finest scales (lamellae are fine)."""
    planes = []
    used = scales[:2]
    for s in used:
        gr = ndi.gaussian_filter(g, s / 2, order=(1, 0))
        gc = ndi.gaussian_filter(g, s / 2, order=(0, 1))
        jrr = ndi.gaussian_filter(gr * gr, 2 * s)
        jcc = ndi.gaussian_filter(gc * gc, 2 * s)
        jrc = ndi.gaussian_filter(gr * gc, 2 * s)
        planes.append(np.sqrt((jrr - jcc) ** 2 + 4 * jrc**2) / (jrr + jcc + 1e-6))
    return planes, [f"coherence_s{s:g}" for s in used]


def _ridge(g: np.ndarray, scales) -> Planes:
    """Scale-normalised Hessian eigenvalues at the two finest scales: a thin bright
    line has a strongly negative smaller one, a thin dark line (crack, membrane) a
    strongly positive larger one."""
    planes, names = [], []
    for s in scales[:2]:
        hrr = ndi.gaussian_filter(g, s, order=(2, 0))
        hcc = ndi.gaussian_filter(g, s, order=(0, 2))
        hrc = ndi.gaussian_filter(g, s, order=(1, 1))
        half = np.sqrt(((hrr - hcc) / 2) ** 2 + hrc**2)
        mid = (hrr + hcc) / 2
        planes += [s * s * (mid - half), s * s * (mid + half)]
        names += [f"ridge_low_s{s:g}", f"ridge_high_s{s:g}"]
    return planes, names


PIXEL_FEATURES: dict[str, Callable[[np.ndarray, tuple], Planes]] = {
    "gray": _gray,
    "intensity": _intensity,
    "texture": _texture,
    "coherence": _coherence,
    "ridge": _ridge,
}

PIXEL_FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "gray": ("gray",),  # pixel-intensity k-means, the trivial baseline
    # the pixel mode's default (chosen on the tuning split, docs/generality.md)
    "texture": ("intensity", "texture", "coherence", "ridge"),
    "all": ("gray", "intensity", "texture", "coherence", "ridge"),
}

DEFAULT_SCALES = (1.0, 2.0, 4.0, 8.0)


def _resolve(features) -> tuple[str, ...]:
    names = PIXEL_FEATURE_SETS.get(features) if isinstance(features, str) else tuple(features)
    if names is None or any(n not in PIXEL_FEATURES for n in names):
        raise InputError(
            f"unknown pixel features {features!r}: choose a set "
            f"({', '.join(PIXEL_FEATURE_SETS)}) or extractors ({', '.join(PIXEL_FEATURES)})"
        )
    return names


def pixel_features(image: np.ndarray, features="texture", scales=DEFAULT_SCALES):
    """(H x W x F float32 planes, names, group index per column) of ``image``."""
    g = to_gray_float(check_image(image))
    planes, names, groups = [], [], []
    for gi, name in enumerate(_resolve(features)):
        p, n = PIXEL_FEATURES[name](g, tuple(float(s) for s in scales))
        planes += [np.asarray(q, np.float32) for q in p]
        names += n
        groups += [gi] * len(n)
    return np.stack(planes, -1), names, np.asarray(groups)


def sample_pixels(shape, n: int, seed: int) -> np.ndarray:
    """Flat indices of ``n`` pixels drawn uniformly (all of them when fewer)."""
    size = int(np.prod(shape))
    if size <= n:
        return np.arange(size)
    return np.random.default_rng(seed).integers(0, size, n)


@dataclass
class PixelSpec:
    """What a pixel-mode :class:`PhaseModel` was fitted on (``model.features``)."""

    features: tuple[str, ...]
    scales: tuple[float, ...]


def absorb_small(phase: np.ndarray, min_area: int) -> np.ndarray:
    """Components (4-connected, per phase) under ``min_area`` pixels take the phase
    of the nearest pixel of a larger component."""
    from skimage.measure import label

    if min_area <= 1:
        return phase
    comp = label(phase, background=-1, connectivity=1)
    small = (np.bincount(comp.ravel()) < min_area)[comp]
    if small.all() or not small.any():
        return phase
    _, (ri, ci) = ndi.distance_transform_edt(small, return_indices=True)
    return phase[ri, ci]


def _superpixels(image, size: int) -> np.ndarray:
    """SLIC superpixels of about ``size`` pixels each, ids 0..n-1."""
    from skimage.segmentation import slic

    g = to_gray_float(image)
    n = max(2, g.size // max(size, 1))
    return slic(g, n_segments=n, compactness=0.05, sigma=1.0, channel_axis=None, start_label=0)


def _assign(x_planes, mean, scale, centers, smooth: float, regions=None, block: int = 256):
    """Phase index per pixel: nearest centre, distances optionally smoothed or
    averaged over ``regions`` (superpixels: boundaries follow the image's edges)."""
    h, w, _ = x_planes.shape
    k = len(centers)
    c = centers.astype(np.float32)
    if smooth <= 0 and regions is None:
        out = np.empty((h, w), np.int64)
        for r0 in range(0, h, block):
            z = (x_planes[r0 : r0 + block] - mean) / scale
            out[r0 : r0 + block] = np.argmin(((z[..., None, :] - c) ** 2).sum(-1), -1)
        return out
    dist = np.empty((k, h, w), np.float32)
    for r0 in range(0, h, block):
        z = (x_planes[r0 : r0 + block] - mean) / scale
        dist[:, r0 : r0 + block] = np.moveaxis(((z[..., None, :] - c) ** 2).sum(-1), -1, 0)
    if regions is not None:
        flat = regions.ravel()
        count = np.bincount(flat).clip(min=1)
        mean_d = np.stack([np.bincount(flat, dist[j].ravel()) / count for j in range(k)])
        return np.argmin(mean_d, 0)[regions]
    for j in range(k):
        dist[j] = ndi.gaussian_filter(dist[j], smooth)
    return np.argmin(dist, 0)


def result_from_phase_map(
    phase: np.ndarray, planes: np.ndarray, names: list[str], model: PhaseModel
) -> PhaseResult:
    """A :class:`PhaseResult` for a pixel phase map (ids 1..K): instance labels are the
    connected components of each phase, their features the mean of ``planes``."""
    from skimage.measure import label

    labels = label(phase, background=0, connectivity=1).astype(np.int64)
    n = int(labels.max(initial=0))
    ids = np.arange(1, n + 1)
    phase_of = np.zeros(n + 1, np.int64)
    phase_of[labels.ravel()] = phase.ravel()
    flat = labels.ravel()
    count = np.bincount(flat, minlength=n + 1).clip(min=1)
    feats = np.stack(
        [np.bincount(flat, planes[..., j].ravel(), n + 1) / count for j in range(planes.shape[-1])],
        1,
    )[1:]
    k = len(model.phase_ids)
    dtype = np.uint8 if k < 255 else np.uint16
    lut = phase_lut(ids, phase_of[1:], n)
    return PhaseResult(
        mask_ids=ids,
        phase_of_mask=phase_of[1:],
        phase_labels=lut[labels].astype(dtype),
        labels=labels,
        features=feats,
        feature_names=list(names),
        model=model,
        k=k,
        background="ignore",
    )


def map_pixels(
    image: np.ndarray,
    k: int | str = 3,
    features="texture",
    scales=DEFAULT_SCALES,
    weights: dict[str, float] | None = None,
    smooth: float = 1.0,
    superpixels: int = 0,
    min_area: int = 16,
    n_sample: int = 20000,
    k_range: tuple[int, int] = (2, 8),
    seed: int = 0,
    progress: ProgressCallback | None = None,
) -> PhaseResult:
    """Phase map of ``image`` from k-means over per-pixel features.

    k: number of phases (every pixel gets one; there is no background), or "auto"
    (best silhouette over ``k_range`` on a sample of pixels).
    features: a set of :data:`PIXEL_FEATURE_SETS` ("texture", "gray") or a tuple of
    :data:`PIXEL_FEATURES` names. scales: Gaussian scales in pixels. weights:
    relative weight of a group after standardisation (feature name -> weight, 1
    where not given; every group counts equally by default).
    smooth: sigma (pixels) of the smoothing of the distance to each centre before
    the arg-min (0: none). superpixels: if > 0, average those distances over SLIC
    superpixels of about this many pixels instead (boundaries follow the image's
    edges; off by default: it did not help on the tuning split). min_area: smaller
    components join their surroundings.
    n_sample: pixels used to fit k-means (predicted for all). seed: sampling and
    k-means seed. progress: ``progress(done, total, message)``, may raise Cancelled.
    """
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    image = check_image(image)
    report(progress, 0, 4, "pixel features")
    planes, names, groups = pixel_features(image, features, scales)
    h, w, _ = planes.shape
    idx = sample_pixels((h, w), n_sample, seed)
    x = planes.reshape(-1, planes.shape[-1])[idx].astype(np.float64)
    used = _resolve(features)
    unknown = set(weights or {}) - set(used)
    if unknown:
        raise InputError(f"weights name group(s) not in the features: {', '.join(sorted(unknown))}")
    z, mean, scale = standardize(x, groups, weights=[(weights or {}).get(n, 1.0) for n in used])
    report(progress, 1, 4, "k-means on a pixel sample")
    silhouette = {}
    if isinstance(k, str) and k != "auto":
        raise InputError(f"K must be a whole number or 'auto', got {k!r}")
    # One thread: on a sample this small, OpenMP start-up and oversubscription on a
    # busy machine cost far more than they save (25x slower measured on 2 shared cores).
    with threadpool_limits(1):
        if k == "auto":
            k, silhouette = choose_k(z[: min(len(z), 5000)], k_range, seed)
        k = int(k)
        if k < 1:
            raise InputError(f"K must be at least 1, got {k}")
        if k > len(np.unique(z, axis=0)):
            raise InputError(f"K={k} is larger than the number of distinct pixels")
        km = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(z)
    report(progress, 2, 4, "assigning every pixel")
    regions = _superpixels(image, superpixels) if superpixels > 0 else None
    lab = _assign(
        planes,
        mean.astype(np.float32),
        scale.astype(np.float32),
        km.cluster_centers_,
        smooth,
        regions,
    )
    # Deterministic, meaningful ids: phase 1 is the darkest (as for masks).
    gray = to_gray_float(image)
    count = np.bincount(lab.ravel(), minlength=k).clip(min=1)
    bright = np.bincount(lab.ravel(), gray.ravel(), k) / count
    order = np.empty(k, np.int64)
    order[np.argsort(bright)] = np.arange(k)
    phase = absorb_small((order[lab] + 1).astype(np.uint16), min_area)
    report(progress, 3, 4, "components")
    centers = np.zeros_like(km.cluster_centers_)
    centers[order] = km.cluster_centers_
    spec = PixelSpec(used, tuple(float(s) for s in scales))
    model = PhaseModel(mean, scale, centers, np.arange(1, k + 1), spec, groups)
    result = result_from_phase_map(phase, planes, names, model)
    result.silhouette = silhouette
    report(progress, 4, 4, "done")
    return result
