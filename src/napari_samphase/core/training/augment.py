"""Augmentations for fine-tuning: the 8 symmetries of the square, intensity jitter.

Micrographs have no up or down, so flips and 90-degree rotations give new views of
the same data for free; they move image and labels alike. Intensity jitter (small
gamma, contrast and brightness changes) touches the image only.
"""

from __future__ import annotations

import numpy as np

# The dihedral group of the square: (quarter turns counter-clockwise, then a
# left-right flip). Index 0 is the identity.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple(
    (turns, flip) for flip in (False, True) for turns in range(4)
)

GAMMA = 0.15  # gamma factor in [1 / (1 + g), 1 + g]
CONTRAST = 0.1  # contrast factor in [1 - c, 1 + c] around the image mean
BRIGHTNESS = 0.05  # offset in [-b, b] x the full range


def dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """Transform ``index`` (0..7, see :data:`DIHEDRAL`) of an H x W (x C) array."""
    turns, flip = DIHEDRAL[index]
    out = np.rot90(array, turns, axes=(0, 1))
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def intensity_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    gamma: float = GAMMA,
    contrast: float = CONTRAST,
    brightness: float = BRIGHTNESS,
) -> np.ndarray:
    """A random small gamma, contrast and brightness change of a 0..255 image;
    float32 in 0..255 (the same change on every channel)."""
    x = np.asarray(image, np.float32) / 255.0
    g = np.exp(rng.uniform(-np.log1p(gamma), np.log1p(gamma)))
    c = rng.uniform(1.0 - contrast, 1.0 + contrast)
    b = rng.uniform(-brightness, brightness)
    x = np.power(np.clip(x, 0.0, 1.0), g)
    x = (x - x.mean()) * c + x.mean() + b
    return (np.clip(x, 0.0, 1.0) * 255.0).astype(np.float32)
