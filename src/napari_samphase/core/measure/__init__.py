"""Measurements a materials scientist reports: particle sizes and shapes, spacing, and
area fractions with confidence intervals, in physical units."""

from napari_samphase.core.measure.fractions import (
    block_fractions,
    fraction_ci_across_fields,
    fraction_ci_within_image,
    point_count_fraction,
)
from napari_samphase.core.measure.particles import (
    nearest_neighbour,
    particle_table,
    particles_of_phases,
)
from napari_samphase.core.measure.statistics import (
    batch_phase_statistics,
    phase_statistics,
    size_histogram,
)

__all__ = [
    "batch_phase_statistics",
    "block_fractions",
    "fraction_ci_across_fields",
    "fraction_ci_within_image",
    "nearest_neighbour",
    "particle_table",
    "particles_of_phases",
    "phase_statistics",
    "point_count_fraction",
    "size_histogram",
]
