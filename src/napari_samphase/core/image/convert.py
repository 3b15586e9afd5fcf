"""Checking micrographs and converting them: uint8 RGB for SAM, luminance for features."""

from __future__ import annotations

import numpy as np

from napari_samphase.core.errors import InputError


def check_image(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Accept 2D gray, H x W x 3 RGB and H x W x 4 RGBA; reject the rest clearly."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8)
    if not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"{name}: unsupported pixel type {image.dtype}")
    if image.size == 0 or min(image.shape[:2], default=0) == 0:
        raise InputError(f"{name}: the image is empty (shape {image.shape})")
    if image.ndim == 3 and image.shape[-1] in (3, 4):
        pass
    elif image.ndim != 2:
        raise InputError(
            f"{name}: expected a 2D gray or RGB image, got shape {image.shape}"
            " (3D stacks are not supported: pick one plane)"
        )
    if min(image.shape[:2]) < 8:
        raise InputError(f"{name}: image too small ({image.shape[0]}x{image.shape[1]} pixels)")
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
