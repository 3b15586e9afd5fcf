"""Per-particle measures (area, equivalent-circle diameter, shape, spacing, border)."""

from __future__ import annotations

import numpy as np

from napari_samphase.core.image.units import PixelSize


def particle_table(
    labels: np.ndarray,
    pixel_size: PixelSize | None = None,
    phase_labels: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """One row per particle (label id > 0) of ``labels``.

    Columns: ``id``, ``phase`` (majority phase of its pixels in ``phase_labels``; 0 when
    none given), ``area<_um2|_px2>``, ``ecd<_um|_px>``, ``perimeter<...>``,
    ``major_axis<...>``, ``minor_axis<...>``, ``aspect_ratio``, ``solidity``,
    ``centroid_row``, ``centroid_col`` (pixels), ``touches_border`` (bool),
    ``nn_distance<...>`` (centre-to-centre distance to the nearest particle of the same
    phase; NaN when it is alone).
    """
    raise NotImplementedError


def particles_of_phases(phase_labels: np.ndarray, instances: np.ndarray | None = None):
    """Instance labels whose every particle lies in one phase: ``instances`` (masks)
    as they are when given, else the connected components of each phase > 0."""
    raise NotImplementedError
