"""Measurements a materials scientist reports: particle sizes and shapes, spacing, and
area fractions with confidence intervals, in physical units."""
