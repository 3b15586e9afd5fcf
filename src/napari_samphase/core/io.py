"""Writing and reading result files (TIFF labels, PNG pictures, CSV tables)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import InputError
from .image import TIFF_SUFFIXES


def write_tiff(path: str | Path, array: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, array, compression="zlib")


def write_png(path: str | Path, array: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, array)


def read_labels(path: str | Path) -> np.ndarray:
    """A 2D integer label image from TIFF or PNG (RGB(A) PNGs of gray labels allowed)."""
    path = Path(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            arr = tifffile.imread(path)
        else:
            import imageio.v3 as iio

            arr = iio.imread(path)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read this file ({reason})") from None
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if not (arr[..., 0] == arr[..., 1]).all() or not (arr[..., 1] == arr[..., 2]).all():
            raise InputError(f"{path}: a label image must be single-channel")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2D label image, got shape {arr.shape}")
    return arr
