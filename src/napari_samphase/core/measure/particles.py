"""Per-particle measures (area, equivalent-circle diameter, shape, spacing, border).

Area, centroid, the moment axes, the border flags, the phase and the spacing are
computed for all particles at once (``np.bincount`` over the label image); perimeter
and solidity (a convex hull per particle) come from scikit-image's
``regionprops_table``. The vectorised measures follow ``regionprops`` definitions
exactly (tests compare them), so either route gives the same numbers.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.labels import check_labels
from napari_samphase.core.image.units import PixelSize

# column stem -> power of length (1: um or px, 2: um2 or px2); the unit is appended
LENGTH_COLUMNS = {
    "area": 2,
    "ecd": 1,
    "perimeter": 1,
    "major_axis": 1,
    "minor_axis": 1,
    "nn_distance": 1,
}
# a particle cut by one of these image edges is not counted in the number density
# (Gundersen's unbiased counting frame: the bottom and right edges are the exclusion
# lines, the top and left edges the inclusion lines)
EXCLUSION_EDGES = ("bottom", "right")


def _edge_ids(labels: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "top": np.unique(labels[0]),
        "bottom": np.unique(labels[-1]),
        "left": np.unique(labels[:, 0]),
        "right": np.unique(labels[:, -1]),
    }


def _compact(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, each pixel's index into them): ``np.unique`` without
    its sort when the values are small non-negative integers (label ids)."""
    top = int(values.max(initial=0))
    if top > 4 * values.size + 1024:  # sparse huge ids: sorting is cheaper
        ids, inv = np.unique(values, return_inverse=True)
        return ids, inv.reshape(values.shape)
    present = np.bincount(values.ravel(), minlength=top + 1) > 0
    ids = np.flatnonzero(present)
    lut = np.zeros(top + 1, np.int64)
    lut[ids] = np.arange(len(ids))
    return ids, lut[values]


def _majority(inv: np.ndarray, n: int, phase_labels: np.ndarray) -> np.ndarray:
    """The phase most pixels of each compact id have (ties: the lower phase id)."""
    vals, vinv = _compact(phase_labels.astype(np.int64, copy=False))
    votes = np.bincount((inv * len(vals) + vinv).ravel(), minlength=n * len(vals))
    return vals[votes.reshape(n, len(vals)).argmax(1)]


MOMENT_CHUNK = 1 << 20  # pixels per block of rows: bounds the temporary arrays


def _moments(inv: np.ndarray, n: int, area: np.ndarray):
    """Centroids and moment axis lengths of every compact id (as ``regionprops``:
    ``4 sqrt(eigenvalue)`` of the pixel-coordinate covariance, population form).

    Coordinates are taken from each particle's bounding-box corner, so the sums stay
    small (no cancellation on large images), and accumulated over blocks of rows."""
    boxes = ndi.find_objects(inv + 1)  # compact ids 0..n-1 -> slices
    r0 = np.array([b[0].start if b else 0 for b in boxes], np.float64)
    c0 = np.array([b[1].start if b else 0 for b in boxes], np.float64)
    sums = np.zeros((5, n))
    step = max(1, MOMENT_CHUNK // max(inv.shape[1], 1))
    cols = np.arange(inv.shape[1], dtype=np.float64)
    for top in range(0, inv.shape[0], step):
        block = inv[top : top + step]
        flat = block.ravel()
        r = np.repeat(np.arange(top, top + block.shape[0], dtype=np.float64), block.shape[1])
        dr = r - r0[flat]
        dc = np.tile(cols, block.shape[0]) - c0[flat]
        for i, w in enumerate((dr, dc, dr * dr, dc * dc, dr * dc)):
            sums[i] += np.bincount(flat, w, n)
    mr, mc, srr, scc, src = sums / area
    mrr, mcc, mrc = srr - mr * mr, scc - mc * mc, src - mr * mc
    half_trace = (mrr + mcc) / 2
    root = np.sqrt(((mrr - mcc) / 2) ** 2 + mrc**2)
    major = 4 * np.sqrt(np.maximum(half_trace + root, 0))
    minor = 4 * np.sqrt(np.maximum(half_trace - root, 0))
    return r0 + mr, c0 + mc, major, minor


def nearest_neighbour(rows, cols, groups) -> np.ndarray:
    """Centre-to-centre distance from each point to the nearest other point of the
    same group (NaN for a point alone in its group)."""
    from scipy.spatial import cKDTree

    rows, cols, groups = map(np.asarray, (rows, cols, groups))
    out = np.full(len(rows), np.nan)
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        if len(idx) < 2:
            continue
        pts = np.stack([rows[idx], cols[idx]], 1)
        dist, _ = cKDTree(pts).query(pts, k=2)
        out[idx] = dist[:, 1]
    return out


def particle_table(
    labels: np.ndarray,
    pixel_size: PixelSize | None = None,
    phase_labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One row per particle (label id > 0) of ``labels``, in increasing id order.

    Parameters
    ----------
    labels : ndarray
        2D instance labels (0 = no particle), e.g. from :func:`particles_of_phases`.
    pixel_size : PixelSize, optional
        Lengths in um and areas in um^2 when known; in px / px2 otherwise (default).
    phase_labels : ndarray, optional
        Phase map of the same shape: each particle's ``phase`` is the phase most of
        its pixels have (ties: the lower id). Without it every particle is phase 0.

    Returns
    -------
    dict of 1D arrays
        ``id``; ``phase``; ``area<_um2|_px2>``; ``ecd<_um|_px>`` (equivalent-circle
        diameter ``sqrt(4 area / pi)``); ``perimeter`` (``regionprops``' 4-connected
        contour estimate); ``major_axis``, ``minor_axis`` (the ellipse with the same
        second moments: ``regionprops``' ``axis_major_length`` / ``axis_minor_length``);
        ``aspect_ratio`` (major / minor, >= 1; NaN when the minor axis is 0, a one-pixel
        line or dot); ``solidity`` (area / convex-hull area); ``centroid_row``,
        ``centroid_col`` (pixels); ``touches_border`` (any pixel on the image edge);
        ``in_counting_frame`` (False for a particle cut by the bottom or right edge:
        what an unbiased number density counts); ``nn_distance<...>`` (centre-to-centre
        distance to the nearest other particle of the same phase, border particles
        included as neighbours; NaN when it is alone in its phase). Length and area
        columns carry the unit in their name (:meth:`PixelSize.suffix`).
    """
    from skimage.measure import regionprops_table

    labels = check_labels(labels).astype(np.int64, copy=False)
    size = pixel_size or PixelSize.pixels()
    ids, inv = _compact(labels)
    n = len(ids)
    if phase_labels is not None:
        phase = _majority(inv, n, check_labels(phase_labels, labels.shape))
    else:
        phase = np.zeros(n, np.int64)
    area = np.bincount(inv.ravel(), minlength=n).astype(np.float64)
    cr, cc, major, minor = _moments(inv, n, np.maximum(area, 1))
    # compact labels, 1..m in the table's row order, for regionprops
    compact = inv if ids[0] == 0 else inv + 1
    keep = ids > 0  # drop the background row
    ids, area, cr, cc = ids[keep], area[keep], cr[keep], cc[keep]
    major, minor, phase = major[keep], minor[keep], phase[keep].astype(np.int64)

    if len(ids):
        shape = regionprops_table(compact, properties=("perimeter", "solidity"))
        perimeter, solidity = shape["perimeter"], shape["solidity"]
    else:
        perimeter = solidity = np.zeros(0)
    edges = _edge_ids(labels)
    touches = np.isin(ids, np.concatenate(list(edges.values())))
    excluded = np.isin(ids, np.concatenate([edges[e] for e in EXCLUSION_EDGES]))
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(minor > 0, major / np.where(minor > 0, minor, 1), np.nan)
    raw = {  # pixel units; converted below
        "area": area,
        "ecd": np.sqrt(4 * area / np.pi),
        "perimeter": perimeter,
        "major_axis": major,
        "minor_axis": minor,
        "nn_distance": nearest_neighbour(cr, cc, phase),
    }
    table = {"id": ids.astype(np.int64), "phase": phase}
    for name in ("area", "ecd", "perimeter", "major_axis", "minor_axis"):
        table[name + size.suffix(LENGTH_COLUMNS[name])] = _convert(size, raw[name], name)
    table.update(
        aspect_ratio=aspect,
        solidity=np.asarray(solidity, np.float64),
        centroid_row=cr,
        centroid_col=cc,
        touches_border=touches,
        in_counting_frame=~excluded,
    )
    table["nn_distance" + size.suffix(1)] = _convert(size, raw["nn_distance"], "nn_distance")
    return table


def _convert(size: PixelSize, values: np.ndarray, name: str) -> np.ndarray:
    power = LENGTH_COLUMNS[name]
    return np.asarray(size.area(values) if power == 2 else size.length(values), np.float64)


def column(table: dict, stem: str) -> np.ndarray:
    """The column ``stem`` of a particle table whatever its unit (``"ecd"`` ->
    ``ecd_um`` or ``ecd_px``)."""
    power = LENGTH_COLUMNS[stem]
    for unit in ("um", "px"):
        name = f"{stem}_{unit}{power if power > 1 else ''}"
        if name in table:
            return np.asarray(table[name])
    raise InputError(f"particle table has no {stem!r} column (columns: {', '.join(table)})")


def particles_of_phases(
    phase_labels: np.ndarray, instances: np.ndarray | None = None, connectivity: int = 2
) -> np.ndarray:
    """Instance labels of the particles of a phase map.

    Parameters
    ----------
    phase_labels : ndarray
        2D phase map (0 = background / matrix).
    instances : ndarray, optional
        Masks (e.g. SAM's or the proposer's, as ``PhaseResult.labels``): returned as
        they are (int64); each mask's phase is then the majority phase of its pixels
        (:func:`particle_table`), so a mask whose pixels are mostly phase 0 is a
        particle of phase 0.
    connectivity : int
        Without ``instances``: the connected components of each phase > 0 are the
        particles, 8-connected (2, default, as ImageJ's particle analysis) or
        4-connected (1). Phase 0 pixels form no particle.

    Returns
    -------
    ndarray (int64)
        Instance labels, 0 outside particles, every particle within one phase when
        made from components.
    """
    phase_labels = check_labels(phase_labels)
    if instances is not None:
        return check_labels(instances, phase_labels.shape).astype(np.int64, copy=True)
    if connectivity not in (1, 2):
        raise InputError(f"connectivity must be 1 (4-neighbours) or 2 (8), got {connectivity}")
    structure = ndi.generate_binary_structure(2, connectivity)
    out = np.zeros(phase_labels.shape, np.int64)
    offset = 0
    for p in np.unique(phase_labels):
        if p == 0:
            continue
        lab, n = ndi.label(phase_labels == p, structure)
        out[lab > 0] = lab[lab > 0] + offset
        offset += n
    return out
