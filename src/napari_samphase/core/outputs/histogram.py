"""Size-distribution histograms per phase: drawn on a matplotlib Axes (the widget's dock
and the CLI's PNG share this) and tabulated for CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def draw_size_histogram(
    ax,
    sizes_by_phase: dict[int, np.ndarray],
    unit: str,
    bins: str = "log",
    n_bins: int = 20,
    highlight: int | None = None,
    quantity: str = "ECD",
) -> None:
    """One step histogram per phase in its phase colour on ``ax``; ``highlight`` drawn
    bold, the others faded; axis label names the quantity and ``unit``."""
    raise NotImplementedError


def histogram_table(sizes_by_phase, unit: str, bins: str = "log", n_bins: int = 20) -> dict:
    """Columns: phase, bin_low_<unit>, bin_high_<unit>, count."""
    raise NotImplementedError


def save_size_histogram(sizes_by_phase, unit: str, path_png: str | Path, **kw) -> None:
    raise NotImplementedError
