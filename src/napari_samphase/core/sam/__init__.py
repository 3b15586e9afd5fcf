"""Segment Anything: model registry, weights, sessions (one embedding per image),
the fast decoder and automatic mask generation."""
