"""Per-phase statistics: area fraction and its interval, counts, density, sizes, shape.

Stereology rules followed (each says what a number means):

- **Area fraction** counts every pixel of the phase, border particles included.
- **Sizes and shapes** (ECD, area, aspect ratio, solidity, spacing) come from the
  particles that do not touch the image edge when ``exclude_border`` (default): an
  edge-cut particle shows only part of itself, and large particles are cut more
  often, so including them biases sizes low.
- **Count** is every particle of the phase; ``count_measured`` those the sizes
  come from.
- **Number density** follows Gundersen's unbiased counting frame: the image is
  the frame, its top and left edges are inclusion lines and its bottom and right
  edges exclusion lines, so a particle cut by the bottom or right edge is not
  counted and one cut only by the top or left edge is. Density = counted / image
  area; over many fields it is unbiased for the particles per unit area.
- **D10 / D50 / D90** are number-weighted percentiles of the ECD (D50 = median).
- **Nearest-neighbour spacing** is the mean, over the measured particles, of the
  centre-to-centre distance to the nearest particle of the same phase (edge
  particles count as neighbours).
"""

from __future__ import annotations

import warnings

import numpy as np

from napari_samphase.core.errors import InputError, check_choice
from napari_samphase.core.image.labels import check_labels
from napari_samphase.core.image.units import PixelSize
from napari_samphase.core.measure.fractions import (
    fraction_ci_across_fields,
    fraction_ci_within_image,
)
from napari_samphase.core.measure.particles import (
    column,
    particle_table,
    particles_of_phases,
)
from napari_samphase.core.progress import ProgressCallback, report


def _nan_stat(fn, values) -> float:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan")
    return float(fn(values))


def _std(v):
    return v.std(ddof=1) if len(v) > 1 else np.nan


# output stem -> (particle-table stem or None for unitless, statistic, unit power)
SIZE_STATS = {
    "ecd_mean": ("ecd", np.mean, 1),
    "ecd_median": ("ecd", np.median, 1),
    "ecd_std": ("ecd", _std, 1),
    "ecd_d10": ("ecd", lambda v: np.percentile(v, 10), 1),
    "ecd_d50": ("ecd", lambda v: np.percentile(v, 50), 1),
    "ecd_d90": ("ecd", lambda v: np.percentile(v, 90), 1),
    "area_mean": ("area", np.mean, 2),
    "aspect_ratio_mean": ("aspect_ratio", np.mean, 0),
    "solidity_mean": ("solidity", np.mean, 0),
    "nn_spacing_mean": ("nn_distance", np.mean, 1),
}


def _concat(tables: list[dict]) -> dict:
    return {k: np.concatenate([t[k] for t in tables]) for k in tables[0]}


def _rows(
    phases,
    fractions: dict,
    table: dict,
    total_px: float,
    size: PixelSize,
    exclude_border: bool,
) -> dict[str, np.ndarray]:
    phase = np.asarray(table["phase"])
    border = np.asarray(table["touches_border"], bool)
    in_frame = np.asarray(table["in_counting_frame"], bool)
    density_name = "number_density" + size.suffix(-2)
    out = {
        "phase": np.asarray(phases, np.int64),
        "area_fraction_pct": np.array([100 * fractions[p][0] for p in phases], np.float64),
        "ci_low_pct": np.array([100 * fractions[p][1] for p in phases], np.float64),
        "ci_high_pct": np.array([100 * fractions[p][2] for p in phases], np.float64),
        "count": np.array([np.count_nonzero(phase == p) for p in phases], np.int64),
    }
    usable = ~border if exclude_border else np.ones(len(phase), bool)
    measured = {p: (phase == p) & usable for p in phases}
    out["count_measured"] = np.array([np.count_nonzero(measured[p]) for p in phases], np.int64)
    counted = np.array([np.count_nonzero((phase == p) & in_frame) for p in phases])
    out[density_name] = counted / size.area(float(total_px))
    for name, (stem, fn, power) in SIZE_STATS.items():
        values = np.asarray(table[stem]) if power == 0 else column(table, stem)
        key = name + (size.suffix(power) if power else "")
        out[key] = np.array([_nan_stat(fn, values[measured[p]]) for p in phases], np.float64)
    return out


def phase_statistics(
    phase_labels: np.ndarray,
    instances: np.ndarray | None = None,
    pixel_size: PixelSize | None = None,
    exclude_border: bool = True,
    confidence: float = 0.95,
    blocks: int = 4,
    particles: dict | None = None,
) -> dict[str, np.ndarray]:
    """One row per phase present in ``phase_labels`` (0 = background / matrix).

    Parameters
    ----------
    phase_labels : ndarray
        2D phase map, 0 = pixels in no phase (the matrix with ``background="class"``).
    instances : ndarray, optional
        The particles (masks); default the connected components of each phase > 0
        (:func:`particles_of_phases`), so phase 0 has particles only when
        ``instances`` give it some.
    pixel_size : PixelSize, optional
        Lengths in um and areas in um^2 when known, px / px2 otherwise.
    exclude_border : bool
        Leave particles touching the image edge out of the size and shape
        statistics (module docstring); they always count for the area fraction.
    confidence : float
        Coverage of the area-fraction interval.
    blocks : int
        The interval is the within-image block interval
        (:func:`fraction_ci_within_image`) over ``blocks x blocks`` fields.
    particles : dict, optional
        A :func:`particle_table` of ``instances`` made with this ``pixel_size`` and
        ``phase_labels``, when the caller has it already (not recomputed).

    Returns
    -------
    dict of 1D arrays, one entry per phase (ascending)
        ``phase``, ``area_fraction_pct``, ``ci_low_pct``, ``ci_high_pct``, ``count``,
        ``count_measured``, ``number_density<_per_um2|_per_px2>``, ``ecd_mean``,
        ``ecd_median``, ``ecd_std``, ``ecd_d10``, ``ecd_d50``, ``ecd_d90`` (each with
        ``_um`` or ``_px``), ``area_mean<_um2|_px2>``, ``aspect_ratio_mean``,
        ``solidity_mean``, ``nn_spacing_mean<_um|_px>``. Size columns are NaN for a
        phase without measured particles (``ecd_std`` also for one particle).
    """
    phase_labels = check_labels(phase_labels)
    size = pixel_size or PixelSize.pixels()
    if particles is None:
        labels = particles_of_phases(phase_labels, instances)
        particles = particle_table(labels, size, phase_labels)
    phases = np.union1d(np.unique(phase_labels), particles["phase"]).astype(np.int64)
    fractions = {p: fraction_ci_within_image(phase_labels == p, blocks, confidence) for p in phases}
    return _rows(phases, fractions, particles, phase_labels.size, size, exclude_border)


def batch_phase_statistics(
    phase_maps,
    instances=None,
    pixel_size: PixelSize | None = None,
    exclude_border: bool = True,
    confidence: float = 0.95,
    progress: ProgressCallback | None = None,
) -> dict[str, np.ndarray]:
    """Per-phase statistics of a batch of fields (images of one specimen).

    Parameters
    ----------
    phase_maps : sequence of ndarray
        One 2D phase map per field (shapes may differ); phase ids mean the same
        phase in every field.
    instances : sequence of ndarray or None, optional
        Particles per field (None, or None entries: components of each phase).
    pixel_size : PixelSize, optional
        One pixel size for every field.
    exclude_border, confidence
        As in :func:`phase_statistics`.
    progress : callable, optional
        ``progress(done, total, message)`` once per field measured; may raise
        ``Cancelled``.

    Returns
    -------
    dict of 1D arrays
        The columns of :func:`phase_statistics`. The area fraction is the mean of
        the fields' fractions with the across-fields Student-t interval
        (:func:`fraction_ci_across_fields`; NaN for one field); counts, sizes and
        spacings pool the particles of all fields; the density is the counted
        particles over the total area.
    """
    maps = [check_labels(p) for p in phase_maps]
    if not maps:
        raise InputError("no phase maps to measure")
    inst = list(instances) if instances is not None else [None] * len(maps)
    if len(inst) != len(maps):
        raise InputError(f"{len(inst)} instance images for {len(maps)} phase maps")
    size = pixel_size or PixelSize.pixels()
    tables = []
    for n, (p, i) in enumerate(zip(maps, inst, strict=True)):
        report(progress, n, len(maps), f"measuring field {n + 1} of {len(maps)}")
        tables.append(particle_table(particles_of_phases(p, i), size, p))
    report(progress, len(maps), len(maps), "fields measured")
    table = _concat(tables)
    phases = np.union1d(np.concatenate([np.unique(p) for p in maps]), table["phase"])
    phases = phases.astype(np.int64)
    fractions = {
        p: fraction_ci_across_fields([np.mean(m == p) for m in maps], confidence) for p in phases
    }
    total = sum(m.size for m in maps)
    return _rows(phases, fractions, table, total, size, exclude_border)


def _log_edges(v: np.ndarray, n_bins: int) -> np.ndarray:
    lo, hi = np.log10(v.min()), np.log10(v.max())
    if lo == hi:  # one size: a decade-wide bin range around it
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.logspace(lo, hi, n_bins + 1)
    if v.min() != v.max():  # 10 ** log10(x) may round below x: the ends are the values
        edges[0], edges[-1] = v.min(), v.max()
    return edges


def _linear_edges(v: np.ndarray, n_bins: int) -> np.ndarray:
    lo, hi = float(v.min()), float(v.max())
    if lo == hi:
        lo, hi = lo - 0.5 * max(abs(lo), 1), hi + 0.5 * max(abs(hi), 1)
    return np.linspace(lo, hi, n_bins + 1)


# bins name -> (which values it can place, edges over them)
HISTOGRAM_BINS = {
    "log": (lambda v: np.isfinite(v) & (v > 0), _log_edges),
    "linear": (np.isfinite, _linear_edges),
}


def size_histogram(values, bins: str = "log", n_bins: int = 20):
    """``(edges, counts)`` of sizes (e.g. ECD) over log or linear bins.

    Parameters
    ----------
    values : array-like
        Sizes; NaN and infinite values are dropped, and for log bins also values
        <= 0.
    bins : {"log", "linear"}
        Log bins (equal ratios: the usual view of a size distribution spanning
        decades) or equal widths, from the smallest to the largest value.
    n_bins : int
        Number of bins.

    Returns
    -------
    edges, counts : ndarray
        ``n_bins + 1`` edges and ``n_bins`` counts (``np.histogram``'s convention,
        last bin closed); both empty when no value can be placed.
    """
    check_choice(bins, tuple(HISTOGRAM_BINS), "histogram bins")
    if int(n_bins) != n_bins or n_bins < 1:
        raise InputError(f"number of histogram bins must be a positive integer, got {n_bins}")
    v = np.asarray(values, np.float64).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        placeable, make_edges = HISTOGRAM_BINS[bins]
        v = v[placeable(v)]
    if not v.size:
        return np.zeros(0), np.zeros(0, np.int64)
    edges = make_edges(v, int(n_bins))
    counts, _ = np.histogram(v, edges)
    return edges, counts.astype(np.int64)
