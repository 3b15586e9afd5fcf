"""Phase modes behind one entry point, and the automatic choice between them.

- ``masks``: a proposer's masks (default the weight-free ``watershed``), then
  k-means over per-mask features (:func:`find_phases`): particles in a matrix,
  phases told apart by the size or shape of their particles.
- ``pixels``: k-means over per-pixel multiscale features (:func:`map_pixels`):
  phases that are textures, lamellae, domains without particle outlines.
- ``intensity``: k-means over the pixel luminance alone: the trivial baseline,
  right when the phases differ by gray level and nothing else.
- ``auto`` (default): runs every mode and keeps the phase map with the best
  :func:`score_phase_map`, an unsupervised criterion measured the same way for
  every candidate; it never sees any ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from napari_samphase.core.errors import InputError, check_choice
from napari_samphase.core.image.convert import check_image
from napari_samphase.core.image.labels import prompt_points
from napari_samphase.core.phases.clustering import PhaseResult, find_phases
from napari_samphase.core.phases.features import standardize
from napari_samphase.core.phases.pixels import map_pixels, pixel_features, sample_pixels
from napari_samphase.core.progress import ProgressCallback, report


@dataclass
class MappedPhases(PhaseResult):
    """A :class:`PhaseResult` that also says which mode made it and, for ``auto``,
    every candidate's :func:`score_phase_map` (higher is better)."""

    mode: str = ""
    scores: dict[str, float] = field(default_factory=dict)


def _run_masks(
    image,
    k,
    seed,
    progress,
    proposer="watershed",
    proposer_options=None,
    segmentation=None,
    embedding=None,
    features="default",
    background=None,
    k_range=(2, 8),
):
    """``segmentation``: masks already made (a ``Segmentation``, e.g. by SAM in the
    CLI or the widget), clustered as they are instead of running ``proposer``."""
    from napari_samphase.core.proposers import segment

    seg = segmentation
    if seg is None:
        seg = segment(image, proposer, progress=progress, **(proposer_options or {}))
    if background is None:  # the method's convention where the proposer leaves a matrix
        background = "class" if (seg.labels == 0).any() else "ignore"
    return find_phases(
        image,
        seg.labels,
        k=k,
        features=features,
        background=background,
        k_range=k_range,
        points=prompt_points(seg.table),
        embedding=embedding,
        seed=seed,
    )


def _run_pixels(image, k, seed, progress, proposer=None, pixel_features="texture", **options):
    return map_pixels(image, k, features=pixel_features, seed=seed, progress=progress, **options)


def _run_intensity(image, k, seed, progress, proposer=None, k_range=(2, 8), n_sample=20000):
    return map_pixels(
        image,
        k,
        features="gray",
        smooth=0.0,
        min_area=0,
        n_sample=n_sample,
        k_range=k_range,
        seed=seed,
        progress=progress,
    )


@dataclass(frozen=True)
class PhaseMode:
    run: Callable[..., PhaseResult]  # (image, k, seed, progress, proposer, **options)
    options: tuple[str, ...]  # the keyword options it takes
    help: str


PHASE_MODES: dict[str, PhaseMode] = {
    "masks": PhaseMode(
        _run_masks,
        ("proposer_options", "segmentation", "embedding", "features", "background", "k_range"),
        "proposer masks + k-means over per-mask features (particles in a matrix)",
    ),
    "pixels": PhaseMode(
        _run_pixels,
        (
            "pixel_features",
            "scales",
            "weights",
            "smooth",
            "superpixels",
            "min_area",
            "n_sample",
            "k_range",
        ),
        "k-means over per-pixel multiscale intensity/texture features",
    ),
    "intensity": PhaseMode(
        _run_intensity, ("k_range", "n_sample"), "k-means over pixel intensity (the baseline)"
    ),
}
AUTO = "auto"
MODE_NAMES = (AUTO, *PHASE_MODES)

# The auto criterion (docs/generality.md): the best silhouette over the feature
# groups of SCORE_FEATURES, plus COHERENCE_WEIGHT x the share of 4-neighbour pixel
# pairs in the same phase. Chosen on the tuning split (generated kinds + even-indexed
# real images), where any weight from 4 to 10 gave the same picks within 0.002 mIoU.
SCORE_FEATURES = "all"
COHERENCE_WEIGHT = 6.0
SCORE_SAMPLE = 2000


def check_mode(mode: str) -> str:
    """``mode`` if it names a phase mode or "auto"; one clear error otherwise."""
    return check_choice(mode, MODE_NAMES, "phase mode")


@dataclass
class ScoreSpace:
    """Standardised multiscale pixel features on a fixed pixel sample: the one space
    every candidate phase map is scored in."""

    index: np.ndarray  # flat pixel indices of the sample
    z: np.ndarray  # sample x F
    groups: np.ndarray  # group index per column

    @classmethod
    def of(cls, image: np.ndarray, n: int = SCORE_SAMPLE, seed: int = 0) -> ScoreSpace:
        planes, _, groups = pixel_features(image, SCORE_FEATURES)
        index = sample_pixels(planes.shape[:2], n, seed)
        x = planes.reshape(-1, planes.shape[-1])[index].astype(np.float64)
        z, _, _ = standardize(x, groups)
        return cls(index, z, groups)


def coherence(phase_labels: np.ndarray) -> float:
    """Share of horizontally and vertically adjacent pixel pairs in the same phase."""
    p = np.asarray(phase_labels)
    same = np.count_nonzero(p[1:] == p[:-1]) + np.count_nonzero(p[:, 1:] == p[:, :-1])
    pairs = p[1:].size + p[:, 1:].size
    return same / max(pairs, 1)


def score_phase_map(phase_labels: np.ndarray, space: ScoreSpace) -> float:
    """Unsupervised quality of a phase map, comparable across modes: how well its
    phases separate the pixels of ``space`` in the feature group that separates
    them best (silhouette; intensity for phases of different gray, texture for
    textures) plus how spatially coherent it is (noise speckles and halo classes
    along edges cost)."""
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    lab = np.asarray(phase_labels).ravel()[space.index]
    if len(np.unique(lab)) < 2:
        return float("-inf")  # one phase: nothing separates
    with threadpool_limits(1):  # small sample: threads cost more than they save
        sil = [
            silhouette_score(space.z[:, space.groups == g], lab) for g in np.unique(space.groups)
        ]
    return float(max(sil) + COHERENCE_WEIGHT * coherence(phase_labels))


def choose_mode(
    image: np.ndarray, phase_maps: dict[str, np.ndarray], seed: int = 0
) -> tuple[str, dict[str, float]]:
    """The "auto" choice: (name of the best-scoring phase map, score of each)."""
    space = ScoreSpace.of(image, seed=seed)
    scores = {n: score_phase_map(p, space) for n, p in phase_maps.items()}
    return max(scores, key=scores.get), scores


def _as_mapped(result: PhaseResult, mode: str, scores: dict[str, float]) -> MappedPhases:
    values = {f.name: getattr(result, f.name) for f in fields(PhaseResult)}
    return MappedPhases(**values, mode=mode, scores=scores)


def _options_for(name: str, options: dict) -> dict:
    return {k: v for k, v in options.items() if k in PHASE_MODES[name].options}


def map_phases(
    image: np.ndarray,
    k: int | str = 3,
    mode: str = AUTO,
    proposer: str = "watershed",
    seed: int = 0,
    progress: ProgressCallback | None = None,
    **options,
) -> MappedPhases:
    """Phase map of ``image`` by the named mode, or the best-scoring one ("auto").

    k: number of phases or "auto" (silhouette over ``k_range``). mode: one of
    :data:`MODE_NAMES`. proposer: the masks mode's proposer (``watershed`` needs no
    weights; ``sam`` needs ``proposer_options`` such as ``model``). seed: k-means and
    sampling seed (same seed, same result). progress: ``progress(done, total,
    message)`` per mode run; may raise Cancelled.
    options: passed to the modes that take them (:data:`PHASE_MODES` lists each
    mode's ``options``): masks: ``proposer_options`` or a ready ``segmentation``
    (and its SAM ``embedding`` for embedding features), ``features``, ``background``;
    pixels: ``pixel_features``, ``scales``, ``weights``, ``smooth``,
    ``superpixels``, ``min_area``, ``n_sample``; all: ``k_range``.
    Returns a :class:`MappedPhases` (a :class:`PhaseResult`) with ``mode`` set to
    the mode that made it and, for "auto", ``scores`` per candidate mode.
    """
    check_mode(mode)
    image = check_image(image)
    names = list(PHASE_MODES) if mode == AUTO else [mode]
    accepted = {o for n in names for o in PHASE_MODES[n].options}
    unknown = set(options) - accepted
    if unknown:
        raise InputError(
            f"phase mode {mode!r} has no option(s) {', '.join(sorted(unknown))} "
            f"(it takes {', '.join(sorted(accepted))})"
        )
    total = len(names) + (mode == AUTO)
    results: dict[str, PhaseResult] = {}
    failures: dict[str, str] = {}
    for i, name in enumerate(names):
        report(progress, i, total, f"phases by {name}")

        def step(done, steps, message, i=i, name=name):  # a mode's own steps: cancellable
            report(progress, i, total, f"{name}: {message}")

        try:
            results[name] = PHASE_MODES[name].run(
                image, k, seed, step, proposer=proposer, **_options_for(name, options)
            )
        except InputError as err:  # e.g. no masks found: that candidate drops out
            if mode != AUTO:
                raise
            failures[name] = str(err)
    if mode != AUTO:
        report(progress, total, total, "done")
        return _as_mapped(results[mode], mode, {})
    if not results:
        raise InputError("no phase mode could map this image: " + "; ".join(failures.values()))
    report(progress, len(names), total, "scoring the candidates")
    best, scores = choose_mode(image, {n: r.phase_labels for n, r in results.items()}, seed)
    report(progress, total, total, f"auto: {best}")
    return _as_mapped(results[best], best, scores)
