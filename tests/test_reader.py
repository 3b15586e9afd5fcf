"""The npe2 TIFF reader: layer data, scale and units from the file's pixel size."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import tifffile

from napari_samphase._napari.reader import get_reader
from napari_samphase.core.image.io import write_tiff
from napari_samphase.core.image.units import PixelSize, pixel_size_from_layer

RNG = np.random.default_rng(0)
GRAY = RNG.integers(0, 255, (48, 64), dtype=np.uint8)
RGB = RNG.integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _read(path):
    reader = get_reader(str(path))
    assert callable(reader)
    layers = reader(str(path))
    assert len(layers) == 1
    return layers[0]


def test_reader_sets_scale_and_units_from_resolution_tags(tmp_path):
    path = tmp_path / "sem_image.tif"
    tifffile.imwrite(path, GRAY, resolution=(4e4, 4e4), resolutionunit="CENTIMETER")
    data, meta, kind = _read(path)
    assert kind == "image" and meta["name"] == "sem_image"
    np.testing.assert_array_equal(data, GRAY)
    np.testing.assert_allclose(meta["scale"], (0.25, 0.25), rtol=1e-9)
    assert tuple(meta["units"]) == ("micrometer", "micrometer")
    assert "CENTIMETER" in meta["metadata"]["pixel_size_source"]
    assert meta["rgb"] is False


def test_reader_imagej_nm(tmp_path):
    path = tmp_path / "ij.tif"
    write_tiff(path, GRAY, PixelSize.parse("2 nm"))
    _, meta, _ = _read(path)
    np.testing.assert_allclose(meta["scale"], (0.002, 0.002), rtol=1e-6)


@pytest.mark.parametrize("planar", [False, True])
def test_reader_rgb(tmp_path, planar):
    path = tmp_path / "rgb.tif"
    data = np.moveaxis(RGB, -1, 0) if planar else RGB
    tifffile.imwrite(
        path, data, photometric="rgb", resolution=(1e4, 1e4), resolutionunit="CENTIMETER"
    )
    out, meta, _ = _read(path)
    np.testing.assert_array_equal(out, RGB)  # channels last, as napari shows RGB
    assert meta["rgb"] is True and len(meta["scale"]) == 2 == len(meta["units"])
    np.testing.assert_allclose(meta["scale"], (1.0, 1.0))


def test_reader_unknown_size_warns_once_and_uses_pixels(tmp_path):
    path = tmp_path / "plain.tif"
    tifffile.imwrite(path, GRAY)
    reader = get_reader(str(path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (_, meta, _), = reader(str(path))  # fmt: skip
    msgs = [str(w.message) for w in caught if "pixel size unknown" in str(w.message)]
    assert len(msgs) == 1 and "plain.tif" in msgs[0]
    assert tuple(meta["units"]) == ("pixel", "pixel")
    np.testing.assert_allclose(meta["scale"], (1.0, 1.0))
    assert meta["metadata"]["pixel_size_source"] == "unknown"


def test_reader_several_paths(tmp_path):
    paths = []
    for i, size in enumerate(("10 nm", "20 nm")):
        paths.append(str(tmp_path / f"f{i}.tif"))
        write_tiff(paths[-1], GRAY, PixelSize.parse(size))
    layers = get_reader(paths)(paths)
    assert [m["name"] for _, m, _ in layers] == ["f0", "f1"]
    np.testing.assert_allclose([m["scale"][-1] for _, m, _ in layers], [0.01, 0.02], rtol=1e-6)


def test_reader_declines_what_it_does_not_take(tmp_path):
    png = tmp_path / "a.png"
    png.write_bytes(b"\x89PNG")
    assert get_reader(str(png)) is None
    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, np.zeros((5, 40, 50), np.uint8))
    assert get_reader(str(stack)) is None  # left to napari's own readers
    two_channels = tmp_path / "cyx.tif"
    tifffile.imwrite(two_channels, np.zeros((2, 40, 50), np.uint16), photometric="minisblack")
    assert get_reader(str(two_channels)) is None
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"garbage")
    assert get_reader(str(bad)) is None
    assert get_reader(str(tmp_path)) is None
    assert get_reader([str(tmp_path / "f.tif"), str(png)]) is None


def test_reader_layer_in_napari_round_trips_the_pixel_size(tmp_path):
    from napari.layers import Layer

    path = tmp_path / "m.tif"
    write_tiff(path, GRAY, PixelSize.parse("12.5 nm"))
    data, meta, kind = _read(path)
    layer = Layer.create(data, meta, kind)
    ps = pixel_size_from_layer(layer.scale, layer.units)  # napari's own pint units
    assert ps.um == pytest.approx(0.0125, rel=1e-6)
    unknown = Layer.create(GRAY, {"scale": (1, 1)}, "image")
    assert not pixel_size_from_layer(unknown.scale, unknown.units).known


def test_manifest_declares_the_reader():
    import npe2
    from npe2.manifest.utils import import_python_name

    # parsing validates the schema; the reader's command must import to get_reader
    manifest = npe2.PluginManifest.from_distribution("napari-samphase")
    (reader,) = [r for r in manifest.contributions.readers if r.command.endswith("read_tiff")]
    assert "*.tif" in reader.filename_patterns and "*.tiff" in reader.filename_patterns
    command = next(c for c in manifest.contributions.commands if c.id == reader.command)
    assert import_python_name(command.python_name) is get_reader


def test_npe2_reads_through_the_plugin(tmp_path):
    import npe2

    path = tmp_path / "m.tif"
    write_tiff(path, GRAY, PixelSize.parse("0.5 um"))
    pm = npe2.PluginManager.instance()
    pm.discover()
    layers = npe2.read([str(path)], plugin_name="napari-samphase", stack=False)
    (data, meta, _), = layers  # fmt: skip
    np.testing.assert_allclose(meta["scale"], (0.5, 0.5), rtol=1e-6)
