"""Comparing results with ground truth."""
