"""Physical pixel size: parsed with pint, read from TIFF tags, reported in micrometres.

Every derived length is given in :data:`LENGTH_UNIT` (um) and every area in um^2 when
the pixel size is known, in pixels otherwise; column names carry the unit
(:meth:`PixelSize.suffix`), so a table states its units in its header.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

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

        One :class:`InputError` line for anything that is not a positive length.
        """
        import pint

        ureg = unit_registry()
        try:
            q = ureg.Quantity(str(text).strip())
            um = q.to(LENGTH_UNIT).magnitude
        except (pint.errors.PintError, ValueError, AttributeError, TypeError):
            raise InputError(
                f"--pixel-size {text!r}: expected a length such as 12.5nm or 0.1um"
            ) from None
        if not um > 0 or um != um or um == float("inf"):
            raise InputError(f"--pixel-size {text!r}: must be a positive length")
        return cls(float(um), LENGTH_UNIT, source)

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


def pixel_size_from_layer(scale, units) -> PixelSize:
    """A layer's last-axis ``scale`` and ``units`` (napari >= 0.5: pint units) -> size."""
    raise NotImplementedError


def read_pixel_size(path: str | Path) -> PixelSize:
    """The pixel size a TIFF carries (ImageJ, OME, FEI/Thermo, Zeiss SEM, or resolution
    tags with a metric unit); :meth:`PixelSize.pixels` when the file has none or is not a
    TIFF."""
    raise NotImplementedError
