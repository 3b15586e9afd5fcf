"""What the U-Net is shown of an image: its channels and their normalisation, the same
in training and at inference (the checkpoint records the normalisation).

Each image is scaled on its own: its 1st and 99.8th percentiles (over all its channels,
so colours keep their balance) go to 0 and 1, and values beyond are clipped. This
makes the network indifferent to bit depth, exposure and contrast settings. Importing
this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_samphase.core.errors import InputError, check_choice

NORMALISATION = {"method": "percentile", "low": 1.0, "high": 99.8}


def _percentile(x: np.ndarray, low: float = 1.0, high: float = 99.8, **_) -> np.ndarray:
    lo, hi = np.percentile(x, [low, high])
    if not hi > lo:  # flat (or nearly): nothing to see, keep it flat
        return np.zeros(x.shape, np.float32)
    out = (x - np.float32(lo)) / np.float32(hi - lo)
    return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


# normalisation method -> (C x H x W float32, **its parameters) -> normalised copy
NORMALISERS: dict[str, Callable[..., np.ndarray]] = {"percentile": _percentile}


def image_channels(image: np.ndarray) -> int:
    """1 for a gray image (also one stored as RGB with equal channels), 3 for colour."""
    from napari_samphase.core.image.convert import check_image

    image = check_image(image)
    if image.ndim == 2:
        return 1
    rgb = image[..., :3]
    same = np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
    return 1 if same else 3


def model_input(
    image: np.ndarray, in_channels: int, normalisation: dict | None = None, name: str = "image"
) -> np.ndarray:
    """The network's input for ``image``: ``in_channels x H x W`` float32, normalised.

    Parameters
    ----------
    image
        2D gray, H x W x 3 RGB or H x W x 4 RGBA (alpha dropped), any pixel type.
    in_channels
        1: colour images become their luminance; 3: gray images are repeated.
    normalisation
        ``{"method": ..., **parameters}`` (:data:`NORMALISERS`); default
        :data:`NORMALISATION`.
    name
        How errors call the image.
    """
    from napari_samphase.core.image.convert import check_image, luma

    norm = dict(NORMALISATION if normalisation is None else normalisation)
    method = check_choice(norm.pop("method", None), tuple(NORMALISERS), "normalisation method")
    image = check_image(image, name=name)
    x = image.astype(np.float32, copy=False)
    if x.ndim == 3:
        x = x[..., :3]
        x = luma(x)[None] if in_channels == 1 else np.moveaxis(x, -1, 0)
    else:
        x = np.repeat(x[None], in_channels, axis=0)
    if x.shape[0] != in_channels:
        raise InputError(f"{name}: the network takes {in_channels} channels, not {x.shape[0]}")
    return np.ascontiguousarray(NORMALISERS[method](x, **norm))
