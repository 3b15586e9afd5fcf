"""Area (volume) fraction of a phase with a confidence interval.

By the Delesse principle the area fraction of a phase on a random section estimates
its volume fraction. Two intervals, both Student-t intervals over per-field
fractions (ASTM E562's statistics, applied to area or point-count fractions):

- **across fields** (:func:`fraction_ci_across_fields`): the fields of a batch
  (images taken at random places of one specimen) are the independent samples. The
  interval is for the specimen's mean fraction; it assumes the fields are
  independent and their fractions roughly normal (or numerous). One field gives no
  interval (NaN).
- **within one image** (:func:`fraction_ci_within_image`): the image is cut into
  ``blocks x blocks`` fields and those are treated as independent fields. This is
  right when particles and their clustering are much smaller than a block; when
  structure spans blocks (bands, large grains) neighbouring blocks are correlated
  and the interval is too narrow. It says how well this one image pins down the
  fraction, not how the specimen varies from place to place.

Intervals are clipped to [0, 1]: a t-interval of a small fraction can reach below 0.
"""

from __future__ import annotations

import numpy as np

from napari_samphase.core.errors import InputError


def _mask(mask) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise InputError(f"phase mask must be 2D, got shape {mask.shape}")
    return mask.astype(bool, copy=False)


def point_count_fraction(mask: np.ndarray, spacing: int, offset: int | None = None) -> float:
    """Systematic point count (ASTM E562): the fraction of grid points in ``mask``.

    Parameters
    ----------
    mask : ndarray
        2D, true where the phase is.
    spacing : int
        Grid spacing in pixels, the same along rows and columns (E562 asks for a
        spacing at least the particle size, so that no two points fall in one
        particle and the points are close to independent).
    offset : int, optional
        Row and column of the first grid point (default ``spacing // 2``: the grid
        centred in its cells).

    Returns
    -------
    float
        Points in the phase / points on the grid (NaN for an empty grid).
    """
    mask = _mask(mask)
    if int(spacing) != spacing or spacing < 1:
        raise InputError(f"point-count spacing must be a positive integer, got {spacing}")
    spacing = int(spacing)
    offset = spacing // 2 if offset is None else int(offset)
    if offset < 0:
        raise InputError(f"point-count offset must be >= 0, got {offset}")
    grid = mask[offset::spacing, offset::spacing]
    return float(grid.mean()) if grid.size else float("nan")


def t_half_width(values, confidence: float = 0.95) -> float:
    """Half-width ``t(n - 1) s / sqrt(n)`` of the Student-t interval of the mean of
    ``values`` (NaN for fewer than two values)."""
    from scipy import stats

    if not 0 < confidence < 1:
        raise InputError(f"confidence must lie between 0 and 1, got {confidence}")
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return float("nan")
    sem = v.std(ddof=1) / np.sqrt(len(v))
    return float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * sem)


def _clipped(centre: float, half: float) -> tuple[float, float]:
    if np.isnan(half):  # one field or block: no spread to estimate
        return float("nan"), float("nan")
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _block_edges(n: int, blocks: int) -> np.ndarray:
    return np.linspace(0, n, blocks + 1).round().astype(int)


def block_fractions(mask: np.ndarray, blocks: int = 4, spacing: int | None = None) -> np.ndarray:
    """The phase fraction of each of ``blocks x blocks`` near-equal blocks (row-major):
    area fractions, or point-count fractions on a grid of ``spacing`` when given."""
    mask = _mask(mask)
    if int(blocks) != blocks or blocks < 1 or blocks > min(mask.shape):
        raise InputError(
            f"blocks must be an integer from 1 to {min(mask.shape)} (the image's shorter "
            f"side), got {blocks}"
        )
    rows, cols = _block_edges(mask.shape[0], blocks), _block_edges(mask.shape[1], blocks)
    out = []
    for r0, r1 in zip(rows[:-1], rows[1:], strict=True):
        for c0, c1 in zip(cols[:-1], cols[1:], strict=True):
            block = mask[r0:r1, c0:c1]
            out.append(block.mean() if spacing is None else point_count_fraction(block, spacing))
    return np.array(out, np.float64)


def fraction_ci_within_image(
    mask: np.ndarray, blocks: int = 4, confidence: float = 0.95, spacing: int | None = None
) -> tuple[float, float, float]:
    """``(fraction, low, high)`` from one image.

    Parameters
    ----------
    mask : ndarray
        2D, true where the phase is.
    blocks : int
        The image is cut into ``blocks x blocks`` near-equal fields, treated as
        independent fields (module docstring: when that holds).
    confidence : float
        Coverage of the interval (0.95: 95%).
    spacing : int, optional
        Point-count each block on a grid of this spacing (ASTM E562) instead of
        taking its area fraction; the reported fraction is then the mean of the
        blocks' point fractions.

    Returns
    -------
    tuple of float
        The fraction (area fraction of the whole image, which is the mean of the
        block fractions up to the rounding of block sizes), and its Student-t
        interval, ``fraction -+ t(n - 1) s / sqrt(n)`` over the ``n = blocks^2``
        block fractions, clipped to [0, 1]; NaN interval for one block.
    """
    per = block_fractions(mask, blocks, spacing)
    fraction = float(_mask(mask).mean()) if spacing is None else float(per.mean())
    return (fraction, *_clipped(fraction, t_half_width(per, confidence)))


def fraction_ci_across_fields(fractions, confidence: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: a Student-t interval over per-field fractions.

    Parameters
    ----------
    fractions : sequence of float
        One fraction in [0, 1] per field (image) of a batch.
    confidence : float
        Coverage of the interval (0.95: 95%).

    Returns
    -------
    tuple of float
        The mean fraction and ``mean -+ t(n - 1) s / sqrt(n)``, clipped to [0, 1];
        the interval is NaN for one field, everything NaN for none.
    """
    f = np.asarray(fractions, np.float64).ravel()
    if f.size and (not np.isfinite(f).all() or f.min() < 0 or f.max() > 1):
        raise InputError("area fractions must be finite and lie in [0, 1] (not percent)")
    if not f.size:
        return float("nan"), float("nan"), float("nan")
    mean = float(f.mean())
    return (mean, *_clipped(mean, t_half_width(f, confidence)))
