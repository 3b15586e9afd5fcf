"""Headless core: numpy arrays in, numpy arrays and dataclasses out.

Nothing under this package may import napari, qtpy or magicgui (enforced by an
import-linter contract and by tests/test_architecture.py).
"""
