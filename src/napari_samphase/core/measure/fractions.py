"""Area (volume) fraction of a phase with a 95% confidence interval."""

from __future__ import annotations

import numpy as np


def point_count_fraction(mask: np.ndarray, spacing: int, offset: int | None = None):
    """Systematic point count (ASTM E562): the fraction of grid points in ``mask``."""
    raise NotImplementedError


def fraction_ci_within_image(mask: np.ndarray, blocks: int = 4, confidence: float = 0.95):
    """``(fraction, low, high)`` from one image: the image cut into ``blocks x blocks``
    fields, a t-interval over the fields' fractions."""
    raise NotImplementedError


def fraction_ci_across_fields(fractions, confidence: float = 0.95):
    """``(mean, low, high)``: a Student-t interval over per-field fractions."""
    raise NotImplementedError
