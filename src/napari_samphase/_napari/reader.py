"""npe2 reader: a TIFF micrograph as an Image layer in physical units.

The layer's ``scale`` and ``units`` come from the pixel size the file carries
(:func:`~napari_samphase.core.image.units.read_pixel_size`: ImageJ, OME, FEI/Thermo,
Zeiss SEM or resolution tags); unknown -> the layer is in pixels, said in one warning.

Taken: single-plane gray images and RGB(A) (chunky ``YXS`` or planar ``SYX``, shown
channels-last as napari shows RGB). Declined (``get_reader`` returns None, so napari's
own readers open them): stacks, multi-channel and other multi-dimensional series, which
the plugin cannot segment anyway, and files that are not readable TIFFs.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from napari_samphase.core.image.io import TIFF_SUFFIXES

_COLOUR_AXES = "SC"  # tifffile's samples / channels axes


def _layout(series) -> str | None:
    """``"gray"``, ``"rgb"`` (channels last), ``"planar"`` (channels first) or None."""
    axes, shape = series.axes, series.shape
    if len(shape) == 2:
        return "gray"
    if len(shape) != 3:
        return None
    if axes[-1] in _COLOUR_AXES and shape[-1] in (3, 4):
        return "rgb"
    if axes[0] == "S" and shape[0] in (3, 4):  # planar RGB; a leading C is channels
        return "planar"
    return None


def _header_layout(path: Path) -> str | None:
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return _layout(tif.series[0])
    except Exception:  # not a TIFF we can read: let another reader try
        return None


def _paths(path: str | Sequence[str]) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]


def get_reader(path: str | Sequence[str]) -> Callable | None:
    """The reader function when every path is a 2D (gray or RGB) TIFF, else None.

    Parameters
    ----------
    path : str or list of str
        What napari asks about (one path or several).
    """
    paths = _paths(path)
    if not paths or any(p.suffix.lower() not in TIFF_SUFFIXES or not p.is_file() for p in paths):
        return None
    if any(_header_layout(p) is None for p in paths):
        return None
    return read_tiffs


def _read_one(path: Path) -> tuple:
    import tifffile

    from napari_samphase.core.image.units import tiff_pixel_size

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        layout = _layout(series)
        data = series.asarray()
        pixel_size = tiff_pixel_size(tif)
    if layout == "planar":
        data = np.moveaxis(data, 0, -1)
    if not pixel_size.known:
        warnings.warn(
            f"{path.name}: pixel size unknown; the layer is in pixels", UserWarning, stacklevel=3
        )
    scale, units = pixel_size.napari_scale(2)
    meta = {
        "name": path.stem.removesuffix(".ome"),
        "scale": scale,
        "units": units,
        "rgb": layout != "gray",
        "metadata": {"pixel_size_source": pixel_size.source},
    }
    return data, meta, "image"


def read_tiffs(path: str | Sequence[str]) -> list[tuple]:
    """One Image layer per TIFF, with ``scale``/``units`` from its pixel size.

    Parameters
    ----------
    path : str or list of str
        Paths :func:`get_reader` accepted.
    """
    return [_read_one(p) for p in _paths(path)]
