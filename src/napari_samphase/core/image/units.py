"""Physical pixel size: parsed with pint, read from TIFF tags, reported in micrometres.

Every derived length is given in :data:`LENGTH_UNIT` (um) and every area in um^2 when
the pixel size is known, in pixels otherwise; column names carry the unit
(:meth:`PixelSize.suffix`), so a table states its units in its header.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from napari_samphase.core.errors import InputError

LENGTH_UNIT = "um"  # what tables, charts and layers report lengths in when known
PIXEL_UNIT = "px"


@lru_cache(maxsize=1)
def unit_registry():
    """One pint registry for the process (building one takes ~0.1 s)."""
    import pint

    return pint.UnitRegistry()


@dataclass(frozen=True)
class PixelSize:
    """The side of one (square) pixel.

    Parameters
    ----------
    value : float
        Length of a pixel side in ``unit``.
    unit : str
        A length unit pint understands (``"nm"``, ``"um"``, ``"µm"``, ``"micron"``...)
        or ``"px"`` when the size is unknown.
    source : str
        Where it came from (``"--pixel-size"``, ``"ImageJ tags"``, ``"layer scale"``,
        ``"unknown"``): said once to the user.
    """

    value: float = 1.0
    unit: str = PIXEL_UNIT
    source: str = "unknown"

    @classmethod
    def pixels(cls) -> PixelSize:
        """Unknown size: one pixel is one ``px``."""
        return cls()

    @classmethod
    def parse(cls, text: str, source: str = "--pixel-size") -> PixelSize:
        """``"12.5nm"``, ``"0.1 um"``, ``"2 µm"`` -> a size in micrometres.

        Parameters
        ----------
        text : str
            A number followed by a length unit pint knows.
        source : str
            Where the text came from; names it in errors and becomes :attr:`source`.

        Raises
        ------
        InputError
            One line for anything that is not a positive, finite length.
        """
        text = str(text).strip()
        expected = f"{source} {text!r}: expected a length such as 12.5nm or 0.1um"
        if "," in text:  # pint would read "1,5 um" as 15 um
            raise InputError(f"{expected} (with a decimal point)")
        if not _LEADING_NUMBER.match(text):
            raise InputError(expected)
        try:
            q = unit_registry().Quantity(text)
            if _is_pixel_unit(q.units):  # pint's "px" is a CSS pixel, 1/96 inch
                raise ValueError(text)
            um = float(q.to(LENGTH_UNIT).magnitude)
        except Exception:  # pint's parser raises many kinds (tokenize, pint, value errors)
            raise InputError(expected) from None
        if not (math.isfinite(um) and um > 0):
            raise InputError(f"{source} {text!r}: must be a positive length")
        return cls(um, LENGTH_UNIT, source)

    @property
    def known(self) -> bool:
        return self.unit != PIXEL_UNIT

    @property
    def length_unit(self) -> str:
        """``"um"`` when known, ``"px"`` otherwise."""
        return LENGTH_UNIT if self.known else PIXEL_UNIT

    @property
    def um(self) -> float:
        """The pixel side in micrometres (1.0 per px when unknown)."""
        if not self.known:
            return 1.0
        return float(unit_registry().Quantity(self.value, self.unit).to(LENGTH_UNIT).magnitude)

    def length(self, px):
        """Pixels -> :attr:`length_unit` (numbers or arrays)."""
        return px * self.um

    def area(self, px2):
        """Pixel counts -> :attr:`length_unit` squared."""
        return px2 * self.um**2

    def suffix(self, power: int = 1) -> str:
        """Column-name suffix: ``"_um"``, ``"_um2"``, ``"_px2"``, ``"_per_um2"`` (power -2)."""
        if power < 0:
            return f"_per_{self.length_unit}{-power if -power > 1 else ''}"
        return f"_{self.length_unit}{power if power > 1 else ''}"

    def describe(self) -> str:
        """``"0.0125 um/px (ImageJ tags)"`` or ``"unknown (areas in pixels)"``."""
        if not self.known:
            return "unknown (areas in pixels)"
        return f"{self.um:.6g} um/px ({self.source})"

    def napari_scale(self, ndim: int = 2) -> tuple[tuple[float, ...], tuple[str, ...]]:
        """``(scale, units)`` for a napari layer of ``ndim`` spatial dimensions."""
        unit = "micrometer" if self.known else "pixel"
        return (self.um,) * ndim, (unit,) * ndim


_LEADING_NUMBER = re.compile(r"[-+]?(\d|\.\d)")
# How file metadata spells the micro sign: ImageJ escapes it in its description, and
# Latin-1 text read as UTF-8 doubles it.
_MICRO_SPELLINGS = ("\\u00B5", "\\u00b5", "\\u03BC", "\\u03bc", "Âµ", "μ")
_NO_UNIT = {"", "pixel", "pixels", "px", "none", "dimensionless"}
# Resolutions that image software writes into any TIFF (screen and print defaults): in
# inches or centimetres they say nothing about the specimen.
_PRINT_DPI = (1, 72, 96, 150, 300, 600)
_PRINT_UNITS = {"inch", "in", "cm", "centimeter", "centimetre"}
_UM_PER_INCH = 25400.0


def _is_pixel_unit(units) -> bool:
    return "pixel" in str(units)  # pint's px is css_pixel, a printing length


def _unit_text(unit) -> str:
    text = str(unit).strip()
    for spelling in _MICRO_SPELLINGS:
        text = text.replace(spelling, "µ")
    return text


def to_micrometres(value, unit) -> float | None:
    """``value`` in ``unit`` (any spelling pint or file metadata uses) in micrometres.

    Parameters
    ----------
    value : float
        A length in ``unit``.
    unit : str or pint unit
        ``"nm"``, ``"micron"``, ``"µm"``, ``"\\\\u00B5m"``, ``"m"``... (anything with a ``str``).

    Returns
    -------
    float or None
        None when it is not a positive, finite length (pixels, no unit, bad text).
    """
    text = _unit_text(unit)
    if text.lower() in _NO_UNIT:
        return None
    try:
        q = unit_registry().Quantity(float(value), text)
        if _is_pixel_unit(q.units):
            return None
        um = float(q.to(LENGTH_UNIT).magnitude)
    except Exception:  # pint raises many kinds for text it cannot read
        return None
    return um if math.isfinite(um) and um > 0 else None


def pixel_size_from_layer(scale, units) -> PixelSize:
    """The pixel size a napari layer states with its ``scale`` and ``units``.

    Parameters
    ----------
    scale : sequence of float
        The layer's ``scale``; the last axis (x) is used.
    units : sequence of units, one unit, or None
        The layer's ``units`` (napari >= 0.5: pint units of napari's own registry, read
        through their ``str``; strings work too). ``"pixel"``, dimensionless or None
        (napari < 0.5) -> :meth:`PixelSize.pixels`.

    Returns
    -------
    PixelSize
        In micrometres with ``source="layer scale"`` when the last axis has a length unit.
    """
    if units is None:
        return PixelSize.pixels()
    if isinstance(units, (list, tuple)):
        if not units:
            return PixelSize.pixels()
        units = units[-1]
    values = [scale] if isinstance(scale, (int, float)) else list(scale)
    um = to_micrometres(values[-1], units) if values else None
    return PixelSize(um, LENGTH_UNIT, "layer scale") if um else PixelSize.pixels()


def _sized(um_x: float | None, um_y: float | None, source: str) -> PixelSize | None:
    """X's size, saying so in ``source`` when Y differs (non-square pixels)."""
    if um_x is None:
        return None
    if um_y is not None and not math.isclose(um_x, um_y, rel_tol=1e-3):
        source += f" (non-square pixels: X used, Y/X = {um_y / um_x:.4g})"
    return PixelSize(um_x, LENGTH_UNIT, source)


def _per_unit(resolution: tuple[float, float], unit: str, source: str) -> PixelSize | None:
    """Pixels per ``unit`` in X, Y -> size; None for print defaults and non-lengths."""
    x, y = (float(r) for r in resolution)
    if not (x > 0 and y > 0):
        return None
    um_x, um_y = to_micrometres(1 / x, unit), to_micrometres(1 / y, unit)
    if um_x is None:
        return None
    if _unit_text(unit).lower() in _PRINT_UNITS:
        dpi = _UM_PER_INCH / um_x
        if any(math.isclose(dpi, d, rel_tol=1e-3) for d in _PRINT_DPI):
            return None
    return _sized(um_x, um_y, source)


def _first_page(tif):
    return tif.pages[0]


def _from_imagej(tif) -> PixelSize | None:
    meta = tif.imagej_metadata
    if not meta or "unit" not in meta:
        return None
    # ImageJ stores pixels per its own unit in XResolution (ResolutionUnit NONE)
    return _per_unit(_first_page(tif).resolution, meta["unit"], "ImageJ tags")


def _from_ome(tif) -> PixelSize | None:
    xml = tif.ome_metadata
    if not xml:
        return None
    root = ET.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None or pixels.get("PhysicalSizeX") is None:
        return None

    def size(axis: str) -> float | None:
        value = pixels.get(f"PhysicalSize{axis}")
        unit = pixels.get(f"PhysicalSize{axis}Unit", "µm")  # the OME schema's default
        return None if value is None else to_micrometres(value, unit)

    return _sized(size("X"), size("Y"), "OME-XML PhysicalSizeX")


_FEI_SECTIONS = ("Scan", "EScan")  # electron-beam scan; EScan in environmental mode


def _from_fei(tif) -> PixelSize | None:
    meta = tif.fei_metadata or {}
    for section in _FEI_SECTIONS:
        scan = meta.get(section) or {}
        um = to_micrometres(scan.get("PixelWidth", float("nan")), "m")
        height = scan.get("PixelHeight")
        found = _sized(
            um,
            None if height is None else to_micrometres(height, "m"),
            f"FEI/Thermo [{section}] PixelWidth",
        )
        if found is not None:
            return found
    return None


_ZEISS_KEYS = ("ap_image_pixel_size", "ap_pixel_size")


def _from_zeiss(tif) -> PixelSize | None:
    meta = tif.sem_metadata or {}
    for key in _ZEISS_KEYS:
        entry = meta.get(key)
        if not isinstance(entry, tuple):
            continue
        source = f"Zeiss SEM {key}"
        if len(entry) >= 3:  # (name, value, unit)
            um = to_micrometres(entry[1], entry[2])
            if um is not None:
                return PixelSize(um, LENGTH_UNIT, source)
        elif len(entry) == 2 and isinstance(entry[1], str):  # "2.5µm": tifffile kept the text
            try:
                return PixelSize.parse(_unit_text(entry[1]), source)
            except InputError:
                continue
    return None


# TIFF ResolutionUnit codes; 4 and 5 are tifffile's extensions
_RESOLUTION_UNITS = {2: ("inch", "INCH"), 3: ("cm", "CENTIMETER"), 4: ("mm", "MILLIMETER"),
                     5: ("um", "MICROMETER")}  # fmt: skip


def _from_resolution_tags(tif) -> PixelSize | None:
    page = _first_page(tif)
    unit = _RESOLUTION_UNITS.get(int(page.resolutionunit))
    if unit is None or 282 not in page.tags:  # NONE: a ratio, not a size
        return None
    return _per_unit(page.resolution, unit[0], f"TIFF resolution tags ({unit[1]})")


# Tried in this order: a user's ImageJ calibration, then OME, then the instrument's
# own tags, then the generic resolution tags (often a screen default).
TIFF_PIXEL_SIZE_READERS: tuple[tuple[str, Callable[[Any], PixelSize | None]], ...] = (
    ("ImageJ", _from_imagej),
    ("OME", _from_ome),
    ("FEI/Thermo", _from_fei),
    ("Zeiss SEM", _from_zeiss),
    ("resolution tags", _from_resolution_tags),
)


def tiff_pixel_size(tif) -> PixelSize:
    """The pixel size an open :class:`tifffile.TiffFile` carries (see :func:`read_pixel_size`)."""
    for _name, read in TIFF_PIXEL_SIZE_READERS:
        try:
            found = read(tif)
        except Exception:  # malformed metadata in one place: the next may still have it
            found = None
        if found is not None:
            return found
    return PixelSize.pixels()


def read_pixel_size(path: str | Path) -> PixelSize:
    """The pixel size a TIFF carries.

    Tried in order: ImageJ calibration (``unit`` + XResolution), OME-XML
    ``PhysicalSizeX``, FEI/Thermo ``[Scan] PixelWidth``, Zeiss SEM ``ap_image_pixel_size``,
    then resolution tags in a metric unit or inches (not the 72/96/300-dpi defaults).
    Non-square pixels: X is used and :attr:`PixelSize.source` says so.

    Parameters
    ----------
    path : str or Path
        An image file.

    Returns
    -------
    PixelSize
        :meth:`PixelSize.pixels` when the file has no size, is not a TIFF or cannot be
        read as one (reading its pixels will say why).

    Raises
    ------
    InputError
        When there is no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tiff_pixel_size(tif)
    except Exception:  # not a TIFF, or a broken one
        return PixelSize.pixels()
