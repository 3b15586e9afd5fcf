"""Reading and writing files: micrographs, label images (TIFF/PNG), CSV tables."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import check_image
from napari_samphase.core.image.units import PixelSize, read_pixel_size

TIFF_SUFFIXES = {".tif", ".tiff"}


def require_file(path: str | Path) -> Path:
    """``path`` as a Path; :class:`InputError` when there is no such file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


# TIFF axes that hold colour samples or channels; any other leading axis of a 3D
# series (pages, Z, time) is a stack, even with 3 or 4 planes that would pass for
# planar RGB.
_CHANNEL_AXES = "SC"


def _read_tiff(path: Path) -> np.ndarray:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        axes = series.axes
        # decided from the header, before a large stack is decoded
        if len(axes) >= 3 and axes[0] not in _CHANNEL_AXES and axes[-1] not in _CHANNEL_AXES:
            raise InputError(
                f"{path}: a stack of {series.shape[0]} planes (axes {axes}); 3D stacks are"
                " not supported: pick one plane"
            )
        return series.asarray()


def read_array(path: str | Path, what: str = "an image") -> np.ndarray:
    """The pixels of a TIFF (tifffile) or any format imageio reads; one clear
    :class:`InputError` naming the file and the reader's reason otherwise.
    Multi-plane TIFF stacks are refused here, where the file says what its axes are."""
    path = require_file(path)
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            arr = _read_tiff(path)
        else:
            import imageio.v3 as iio

            arr = iio.imread(path)
    except InputError:
        raise
    except Exception as exc:  # every reader has its own exception types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read this file as {what} ({reason})") from None
    return np.asarray(arr)


def load_image(path: str | Path, max_pixels: float | None = None) -> np.ndarray:
    """Read a micrograph in the canonical form of :func:`check_image` (2D gray or
    H x W x 3|4); one clear :class:`InputError` otherwise.

    max_pixels: pixel budget passed to :func:`check_image` (default
        ``SAMPHASE_MAX_MEGAPIXELS``, 100 megapixels).
    """
    return check_image(read_array(path, "an image"), name=str(path), max_pixels=max_pixels)


def load_image_with_pixel_size(
    path: str | Path, max_pixels: float | None = None
) -> tuple[np.ndarray, PixelSize]:
    """:func:`load_image` and the pixel size the file carries (:func:`read_pixel_size`).

    Parameters
    ----------
    path : str or Path
        A micrograph (TIFF tags give the size; other formats are in pixels).
    max_pixels : float, optional
        Pixel budget passed to :func:`check_image`.
    """
    return load_image(path, max_pixels=max_pixels), read_pixel_size(path)


def read_labels(path: str | Path) -> np.ndarray:
    """A 2D integer label image from TIFF or PNG (RGB(A) PNGs of gray labels allowed)."""
    arr = read_array(path, "a label image")
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if not (arr[..., 0] == arr[..., 1]).all() or not (arr[..., 1] == arr[..., 2]).all():
            raise InputError(f"{path}: a label image must be single-channel")
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{path}: expected a 2D label image, got shape {arr.shape}")
    return arr


# What ImageJ opens natively: calibrated through its own description (unit=um) there.
_IMAGEJ_DTYPES = {np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)}


def _imagej_compatible(array: np.ndarray) -> bool:
    if array.ndim == 3 and array.shape[-1] == 3:
        return array.dtype == np.uint8  # RGB
    # 2D, or a stack of gray planes (ImageJ channels)
    return array.ndim in (2, 3) and array.dtype in _IMAGEJ_DTYPES


def write_tiff(path: str | Path, array: np.ndarray, pixel_size: PixelSize | None = None) -> None:
    """Write ``array`` as a zlib-compressed TIFF, calibrated when the size is known.

    Parameters
    ----------
    path : str or Path
        Output file.
    array : ndarray
        2D image or labels, H x W x 3|4 RGB(A), or a K x H x W stack of gray planes
        (e.g. class probabilities; never taken for planar colour).
    pixel_size : PixelSize, optional
        Written when known, so that ImageJ/Fiji and :func:`read_pixel_size` see it:
        ImageJ calibration (XResolution in pixels per um, ``unit=um``) for the types
        ImageJ opens (uint8, uint16, float32, RGB uint8), standard resolution tags in
        pixels per centimetre otherwise (e.g. uint32 labels).
    """
    import tifffile

    array = np.asarray(array)
    planes = array.ndim == 3 and array.shape[-1] not in (3, 4)
    kwargs: dict = {"photometric": "minisblack"} if planes else {}
    if pixel_size is not None and pixel_size.known:
        if _imagej_compatible(array):
            per_um = 1.0 / pixel_size.um
            meta = {"unit": "um", **({"axes": "CYX"} if planes else {})}
            kwargs |= {"imagej": True, "resolution": (per_um, per_um), "metadata": meta}
        else:
            per_cm = 1e4 / pixel_size.um
            kwargs |= {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    tifffile.imwrite(path, array, compression="zlib", **kwargs)


def write_png(path: str | Path, array: np.ndarray) -> None:
    import imageio.v3 as iio

    iio.imwrite(path, array)


def write_table_csv(table: dict[str, np.ndarray], path: str | Path) -> None:
    """A dict of equal-length columns as CSV (floats with 6 significant digits)."""
    cols = list(table)
    n = len(next(iter(table.values()))) if table else 0
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(cols)
        for i in range(n):
            row = []
            for c in cols:
                v = table[c][i]
                row.append(f"{v:.6g}" if isinstance(v, (float, np.floating)) else v)
            writer.writerow(row)
