"""Checking micrographs and converting them: uint8 RGB for SAM, luminance for features."""

from __future__ import annotations

import os

import numpy as np

from napari_samphase.core.errors import InputError

# Images are processed whole (no tiling), with several full-size float copies alive
# at once; past this budget a clear error beats the out-of-memory killer.
MAX_MEGAPIXELS_ENV = "SAMPHASE_MAX_MEGAPIXELS"
DEFAULT_MAX_MEGAPIXELS = 100.0


def max_megapixels() -> float:
    """The pixel budget in megapixels: ``SAMPHASE_MAX_MEGAPIXELS``, else 100."""
    raw = os.environ.get(MAX_MEGAPIXELS_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_MEGAPIXELS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0:  # also catches NaN
        raise InputError(f"{MAX_MEGAPIXELS_ENV} must be a positive number, not {raw!r}")
    return value


def _channels_last(image: np.ndarray) -> np.ndarray:
    """(C, H, W) planar RGB(A) -> (H, W, C). Channels-last wins when the last axis
    could be channels: a (3, H, 3) array is H x 3 RGB, never 3 x 3 planar (either
    way it is far too small and is refused by the size check)."""
    if image.ndim == 3 and image.shape[-1] not in (2, 3, 4) and image.shape[0] in (3, 4):
        return np.moveaxis(image, 0, -1)
    return image


def check_image(
    image: np.ndarray, name: str = "image", max_pixels: float | None = None
) -> np.ndarray:
    """The image in canonical form: 2D gray, H x W x 3 RGB or H x W x 4 RGBA.

    Also accepted and converted: gray + alpha (H x W x 2; alpha dropped), planar
    RGB(A) (3 or 4 x H x W, moved to channels-last when the last axis is not
    channels), bool (True -> 255, so a mask is visible as uint8). Everything else
    raises one clear :class:`InputError`.

    name: how the error messages call the image (e.g. its path).
    max_pixels: refuse images with more pixels (H x W) than this; default
        ``SAMPHASE_MAX_MEGAPIXELS`` megapixels (100 unless set).
    """
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * np.uint8(255)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"{name}: unsupported pixel type {image.dtype}")
    if image.size == 0:
        raise InputError(f"{name}: the image is empty (shape {image.shape})")
    image = _channels_last(image)
    if image.ndim == 3 and image.shape[-1] == 2:
        image = image[..., 0]  # gray + alpha: the alpha channel carries no structure
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise InputError(
            f"{name}: expected a 2D gray or RGB image, got shape {image.shape}"
            " (3D stacks are not supported: pick one plane)"
        )
    h, w = image.shape[:2]
    if min(h, w) < 8:
        raise InputError(f"{name}: image too small ({h}x{w} pixels)")
    limit = max_megapixels() * 1e6 if max_pixels is None else float(max_pixels)
    if h * w > limit:
        raise InputError(
            f"{name}: {h}x{w} pixels ({h * w / 1e6:.0f} megapixels) is more than the"
            f" {limit / 1e6:g} megapixels this untiled path can hold in memory; crop or"
            f" downsample the image, or raise {MAX_MEGAPIXELS_ENV} if the machine has the"
            " memory"
        )
    if np.issubdtype(image.dtype, np.floating) and not np.isfinite(image).all():
        raise InputError(f"{name}: the image contains NaN or infinite values")
    return image


def normalize_to_uint8(image: np.ndarray, low: float = 0.5, high: float = 99.5) -> np.ndarray:
    """uint8 stays as is; 16-bit, other integers and floats are stretched between percentiles."""
    if image.dtype == np.uint8:
        return image
    data = image.astype(np.float32)
    lo, hi = np.percentile(data, [low, high])
    if hi <= lo:  # flat image: keep it flat rather than divide by zero
        return np.zeros(image.shape, np.uint8)
    data = (data - lo) / (hi - lo)
    return (np.clip(data, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 view of any accepted image (gray repeated, alpha dropped)."""
    image = check_image(image)
    if image.ndim == 3:
        image = image[..., :3]
    image = normalize_to_uint8(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return np.ascontiguousarray(image)


# ITU-R BT.601 luma weights, the one conversion from RGB to gray in the package.
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def luma(rgb: np.ndarray) -> np.ndarray:
    """Weighted sum of the last axis (R, G, B) with :data:`LUMA`, in the input's units."""
    return rgb @ LUMA


def to_gray_float(image: np.ndarray) -> np.ndarray:
    """Luminance in [0, 1] (float32), for features and weight-free proposers."""
    rgb = to_rgb_uint8(image).astype(np.float32) / 255.0
    return luma(rgb)
