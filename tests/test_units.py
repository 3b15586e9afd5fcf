"""Physical pixel size: parsing, reading it from TIFF tags, writing it, layer scale/units."""

from __future__ import annotations

import numpy as np
import pint
import pytest
import tifffile

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.io import load_image_with_pixel_size, write_tiff
from napari_samphase.core.image.units import (
    PixelSize,
    pixel_size_from_layer,
    read_pixel_size,
)

IMAGE = (np.arange(40 * 50) % 251).astype(np.uint8).reshape(40, 50)


# --- parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "um"),
    [
        ("12.5nm", 0.0125),
        ("0.1 um", 0.1),
        ("2 µm", 2.0),  # micro sign
        ("2 μm", 2.0),  # greek mu
        ("3 micron", 3.0),
        ("1.5 micrometers", 1.5),
        ("1e-3 mm", 1.0),
        ("5 Å", 5e-4),
        ("  7 nm  ", 0.007),
    ],
)
def test_parse_variants(text, um):
    ps = PixelSize.parse(text)
    assert ps.known and ps.unit == "um" and ps.source == "--pixel-size"
    assert ps.um == pytest.approx(um, rel=1e-9)


@pytest.mark.parametrize(
    "text",
    ["abc", "", "12.5", "-1um", "0 nm", "nan um", "inf um", "3 s", "5 pixel", "1 px",
     "1,5 um", "(", "1 um um)", "um"],
)  # fmt: skip
def test_parse_bad_strings_one_input_error_line(text):
    with pytest.raises(InputError) as err:
        PixelSize.parse(text)
    msg = str(err.value)
    assert "\n" not in msg and repr(text) in msg and "--pixel-size" in msg


def test_parse_names_its_source_in_errors():
    with pytest.raises(InputError, match="pixel size field"):
        PixelSize.parse("abc", source="pixel size field")


def test_same_image_at_twice_the_pixel_size_has_four_times_the_areas(tmp_path, micrograph):
    # propagated through files: written with a size, read back, areas in um^2
    counts = np.bincount(micrograph.instances.ravel())[1:]
    areas = {}
    for nm in (1, 2):
        path = tmp_path / f"m{nm}.tif"
        write_tiff(path, micrograph.image, PixelSize.parse(f"{nm} nm"))
        image, ps = load_image_with_pixel_size(path)
        np.testing.assert_array_equal(image, micrograph.image)
        assert ps.suffix(2) == "_um2"
        areas[nm] = ps.area(counts)
    np.testing.assert_allclose(areas[1], counts * 1e-6, rtol=1e-6)
    np.testing.assert_allclose(areas[2], 4 * areas[1], rtol=1e-6)


# --- reading TIFF tags ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("unit", "per_unit", "um"),
    [
        ("um", 4.0, 0.25),
        ("nm", 0.5, 0.002),
        ("micron", 2.0, 0.5),
        ("\\u00B5m", 10.0, 0.1),  # how ImageJ escapes the micro sign in its description
        ("micrometer", 8.0, 0.125),
        ("mm", 1000.0, 1.0),
    ],
)
def test_imagej_resolution(tmp_path, unit, per_unit, um):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(
        path, IMAGE, imagej=True, resolution=(per_unit, per_unit), metadata={"unit": unit}
    )
    ps = read_pixel_size(path)
    assert ps.known and ps.um == pytest.approx(um, rel=1e-6)
    assert "ImageJ" in ps.source


def test_imagej_without_a_physical_unit_is_unknown(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, IMAGE, imagej=True, resolution=(3, 3), metadata={"unit": "pixel"})
    assert read_pixel_size(path) == PixelSize.pixels()


@pytest.mark.parametrize(("size", "unit", "um"), [(0.5, "nm", 5e-4), (0.2, None, 0.2)])
def test_ome_physical_size(tmp_path, size, unit, um):
    meta = {"PhysicalSizeX": size, "PhysicalSizeY": size}
    if unit:
        meta["PhysicalSizeXUnit"] = meta["PhysicalSizeYUnit"] = unit
    path = tmp_path / "a.ome.tif"
    tifffile.imwrite(path, IMAGE, ome=True, metadata=meta)
    ps = read_pixel_size(path)
    assert ps.um == pytest.approx(um, rel=1e-9)  # default unit: um
    assert "OME" in ps.source and "PhysicalSizeX" in ps.source


def test_resolution_centimeter(tmp_path):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, IMAGE, resolution=(2e4, 2e4), resolutionunit="CENTIMETER")
    ps = read_pixel_size(path)
    assert ps.um == pytest.approx(0.5, rel=1e-9)
    assert "CENTIMETER" in ps.source


def test_non_square_pixels_use_x_and_say_so(tmp_path):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, IMAGE, resolution=(2e4, 1e4), resolutionunit="CENTIMETER")
    ps = read_pixel_size(path)
    assert ps.um == pytest.approx(0.5, rel=1e-9)  # X: 2e4 px/cm
    assert "non-square" in ps.source


def test_no_tags_is_unknown(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, IMAGE)
    ps = read_pixel_size(path)
    assert not ps.known and ps == PixelSize.pixels()


@pytest.mark.parametrize("dpi", [72, 96, 300])
def test_inch_print_defaults_are_unknown(tmp_path, dpi):
    path = tmp_path / "dpi.tif"
    tifffile.imwrite(path, IMAGE, resolution=(dpi, dpi), resolutionunit="INCH")
    assert not read_pixel_size(path).known


def test_inch_with_a_microscope_resolution_is_known(tmp_path):
    path = tmp_path / "inch.tif"
    tifffile.imwrite(path, IMAGE, resolution=(25400, 25400), resolutionunit="INCH")
    assert read_pixel_size(path).um == pytest.approx(1.0, rel=1e-9)


def _fei(path, text, **kwargs):
    tifffile.imwrite(path, IMAGE, extratags=[(34682, "s", 0, text, True)], **kwargs)


def test_fei_scan_pixel_width_in_metres(tmp_path):
    path = tmp_path / "fei.tif"
    text = "[User]\nUser=me\n[Scan]\nPixelWidth=2.5e-09\nPixelHeight=2.5e-09\n"
    _fei(path, text, resolution=(72, 72), resolutionunit="INCH")  # as FEI files carry
    ps = read_pixel_size(path)
    assert ps.um == pytest.approx(0.0025, rel=1e-9)
    assert "FEI" in ps.source and "PixelWidth" in ps.source


def test_fei_escan(tmp_path):
    path = tmp_path / "fei.tif"
    _fei(path, "[EScan]\nPixelWidth=1.2e-08\n")
    assert read_pixel_size(path).um == pytest.approx(0.012, rel=1e-9)


def test_fei_bad_value_falls_through_to_unknown(tmp_path):
    path = tmp_path / "fei.tif"
    _fei(path, "[Scan]\nPixelWidth=0\n")
    assert not read_pixel_size(path).known


def _zeiss(path, lines):
    text = "0\n1.0\n" + "\n".join(lines) + "\nDP_DETECTOR_TYPE\nDetector = SE2\n"
    # Zeiss writes Latin-1 (the micro sign as one 0xB5 byte)
    tifffile.imwrite(path, IMAGE, extratags=[(34118, "s", 0, text.encode("latin-1"), True)])


@pytest.mark.parametrize(
    ("lines", "um"),
    [
        (["AP_IMAGE_PIXEL_SIZE", "Image Pixel Size = 4.5 nm"], 0.0045),
        (["AP_PIXEL_SIZE", "Pixel Size = 1.25 µm"], 1.25),
        (["AP_PIXEL_SIZE", "Pixel Size = 7 pm"], 7e-6),
    ],
)
def test_zeiss_sem(tmp_path, lines, um):
    path = tmp_path / "zeiss.tif"
    _zeiss(path, lines)
    ps = read_pixel_size(path)
    assert ps.um == pytest.approx(um, rel=1e-9)
    assert "Zeiss" in ps.source


def test_imagej_calibration_wins_over_instrument_tags(tmp_path):
    # a FEI image recalibrated and saved by ImageJ: the user's calibration is the newer one
    path = tmp_path / "both.tif"
    tifffile.imwrite(
        path,
        IMAGE,
        imagej=True,
        resolution=(2, 2),
        metadata={"unit": "um"},
        extratags=[(34682, "s", 0, "[Scan]\nPixelWidth=2.5e-09\n", True)],
    )
    assert read_pixel_size(path).um == pytest.approx(0.5)


def test_non_tiff_and_unreadable_are_unknown(tmp_path):
    png = tmp_path / "a.png"
    import imageio.v3 as iio

    iio.imwrite(png, IMAGE)
    assert read_pixel_size(png) == PixelSize.pixels()
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    assert read_pixel_size(bad) == PixelSize.pixels()
    with pytest.raises(InputError, match="no such file"):
        read_pixel_size(tmp_path / "missing.tif")


# --- writing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "shape"),
    [("uint8", (40, 50)), ("uint16", (40, 50)), ("float32", (40, 50)), ("uint8", (40, 50, 3)),
     ("uint32", (40, 50)), ("int32", (40, 50)), ("float64", (40, 50))],
)  # fmt: skip
def test_write_tiff_round_trip(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 200).astype(dtype)
    path = tmp_path / "w.tif"
    size = PixelSize.parse("12.5 nm")
    write_tiff(path, data, size)
    np.testing.assert_array_equal(tifffile.imread(path), data)
    ps = read_pixel_size(path)
    assert ps.known and ps.um == pytest.approx(0.0125, rel=1e-6)


def test_write_tiff_is_imagej_calibrated_for_imagej_types(tmp_path):
    path = tmp_path / "w.tif"
    write_tiff(path, IMAGE, PixelSize.parse("0.3 um"))
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej and tif.imagej_metadata["unit"] in ("um", "micron")
        assert 1 / tif.pages.first.resolution[0] == pytest.approx(0.3, rel=1e-6)


def test_write_tiff_without_size_is_unknown(tmp_path):
    for size in (None, PixelSize.pixels()):
        path = tmp_path / "w.tif"
        write_tiff(path, IMAGE, size)
        assert not read_pixel_size(path).known
        np.testing.assert_array_equal(tifffile.imread(path), IMAGE)


# --- layer scale and units ------------------------------------------------------------


@pytest.mark.parametrize(
    ("scale", "units", "um"),
    [
        ((0.5, 0.5), ("micrometer", "micrometer"), 0.5),
        ((3.0, 2.0), ("nm", "nm"), 0.002),  # last axis
        ((1.0, 0.1), ("pixel", "µm"), 0.1),
        ([2.0], "nanometer", 0.002),  # one unit for all axes
    ],
)
def test_pixel_size_from_layer(scale, units, um):
    ps = pixel_size_from_layer(np.asarray(scale), units)
    assert ps.known and ps.um == pytest.approx(um, rel=1e-9)
    assert ps.source == "layer scale"


def test_pixel_size_from_layer_with_units_of_another_registry():
    # napari's layers hold units of napari's own pint registry
    other = pint.UnitRegistry()
    units = (other.Unit("nanometer"), other.Unit("nanometer"))
    assert pixel_size_from_layer((4.0, 4.0), units).um == pytest.approx(0.004)


@pytest.mark.parametrize(
    "units", [("pixel", "pixel"), ("dimensionless",) * 2, None, ("", ""), ("px", "px")]
)
def test_pixel_size_from_layer_unknown(units):
    assert not pixel_size_from_layer((0.5, 0.5), units).known


def test_napari_scale_round_trips_through_layer_units():
    size = PixelSize.parse("25 nm")
    scale, units = size.napari_scale(2)
    assert pixel_size_from_layer(scale, units).um == pytest.approx(size.um)
    assert not pixel_size_from_layer(*PixelSize.pixels().napari_scale()).known


def test_sample_pixel_size_is_nominal():
    from napari_samphase.core.image.synthetic import SAMPLE_PIXEL_SIZE

    assert SAMPLE_PIXEL_SIZE.known and SAMPLE_PIXEL_SIZE.um > 0
    assert "nominal" in SAMPLE_PIXEL_SIZE.source


@pytest.mark.parametrize("k", [2, 3, 4])
def test_a_class_stack_is_written_as_gray_planes_not_colour(tmp_path, k):
    import tifffile

    from napari_samphase.core.image.io import write_tiff
    from napari_samphase.core.image.units import PixelSize, read_pixel_size

    probs = np.random.default_rng(0).random((k, 20, 30), dtype=np.float32)
    path = tmp_path / "p.tif"
    write_tiff(path, probs, pixel_size=PixelSize.parse("10nm"))
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.MINISBLACK
        np.testing.assert_array_equal(tif.series[0].asarray().reshape(probs.shape), probs)
    assert read_pixel_size(path).um == pytest.approx(0.01)
