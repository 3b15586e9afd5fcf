"""Per-phase statistics: area fraction and its interval, counts, density, sizes, shape."""

from __future__ import annotations

import numpy as np

from napari_samphase.core.image.units import PixelSize


def phase_statistics(
    phase_labels: np.ndarray,
    instances: np.ndarray | None = None,
    pixel_size: PixelSize | None = None,
    exclude_border: bool = True,
    confidence: float = 0.95,
) -> dict[str, np.ndarray]:
    """One row per phase present in ``phase_labels`` (0 = background when present)."""
    raise NotImplementedError


def size_histogram(values, bins: str = "log", n_bins: int = 20):
    """``(edges, counts)`` of sizes (e.g. ECD) over log or linear bins."""
    raise NotImplementedError
