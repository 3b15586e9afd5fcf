import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import (
    check_image,
    normalize_to_uint8,
    to_gray_float,
    to_rgb_uint8,
)
from napari_samphase.core.image.io import load_image, read_labels


def test_gray_uint8_becomes_three_identical_channels():
    img = np.arange(100, dtype=np.uint8).reshape(10, 10)
    rgb = to_rgb_uint8(img)
    assert rgb.shape == (10, 10, 3)
    assert (rgb[..., 0] == img).all() and (rgb[..., 2] == img).all()


def test_uint16_and_float_are_stretched_between_percentiles():
    rng = np.random.default_rng(0)
    img16 = (rng.random((50, 50)) * 4000 + 1000).astype(np.uint16)
    out = normalize_to_uint8(img16)
    assert out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255
    # order is preserved
    flat = np.argsort(img16.ravel())
    assert (np.diff(out.ravel()[flat].astype(int)) >= 0).all()
    f = rng.normal(size=(40, 40)).astype(np.float32)
    assert normalize_to_uint8(f).max() == 255


def test_rgba_drops_alpha_and_flat_image_stays_flat():
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    assert to_rgb_uint8(rgba)[..., 0].max() == 200
    assert to_rgb_uint8(rgba).shape[-1] == 3
    assert normalize_to_uint8(np.full((9, 9), 7.5)).max() == 0
    assert to_gray_float(np.full((9, 9), 255, np.uint8)).max() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((5, 16, 16), np.uint8), "3D stacks"),
        (np.zeros((0, 10), np.uint8), "empty"),
        (np.zeros((4, 4), np.uint8), "too small"),
        (np.full((10, 10), np.nan), "NaN"),
    ],
)
def test_bad_images_raise_clear_errors(bad, match):
    with pytest.raises(InputError, match=match):
        to_rgb_uint8(bad)


def test_load_image_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_image(tmp_path / "missing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(InputError, match="cannot read"):
        load_image(junk)
    import tifffile

    # three pages are a stack, not planar RGB: the file's axes say so
    three = np.zeros((3, 20, 20), np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", three, photometric="minisblack")
    for read in (load_image, read_labels):
        with pytest.raises(InputError, match="3D stacks"):
            read(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((20, 20), np.uint16))
    assert load_image(tmp_path / "ok.tif").dtype == np.uint16


def _rgb_scene():
    """A 16 x 24 RGB image whose three channels differ everywhere."""
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)


@pytest.mark.parametrize("alpha", [False, True])
def test_planar_rgb_and_rgba_become_channels_last(alpha):
    rgb = _rgb_scene()
    img = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]) if alpha else rgb
    planar = np.moveaxis(img, -1, 0)  # (3|4, 16, 24)
    out = check_image(planar)
    assert out.shape == img.shape and (out == img).all()
    assert (to_rgb_uint8(planar) == rgb).all()


def test_channels_last_wins_when_both_axes_could_be_channels():
    # 3 x 8 x 3 is an 8-wide strip of 3 rows (too small), not 8 x 3 planar
    with pytest.raises(InputError, match=r"too small \(3x8"):
        check_image(np.zeros((3, 8, 3), np.uint8))
    # an image 3 or 4 rows high stays channels-last and is refused as such
    with pytest.raises(InputError, match=r"too small \(4x40"):
        check_image(np.zeros((4, 40, 4), np.uint8))


def test_planar_rgb_tiff_is_read_as_colour(tmp_path):
    import tifffile

    rgb = _rgb_scene()
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(rgb, -1, 0), photometric="rgb", planarconfig="separate"
    )
    assert (load_image(tmp_path / "planar.tif") == rgb).all()


def test_gray_with_alpha_drops_the_alpha(tmp_path):
    gray = np.arange(16 * 24, dtype=np.uint16).reshape(16, 24) % 251
    ga = np.dstack([gray, np.where(gray > 100, 255, 0)]).astype(np.uint8)
    out = check_image(ga)
    assert out.shape == (16, 24) and (out == gray).all()
    from napari_samphase.core.image.io import write_png

    write_png(tmp_path / "ga.png", ga)  # PNG's gray + alpha mode
    assert (load_image(tmp_path / "ga.png") == gray).all()
    assert (to_rgb_uint8(ga)[..., 1] == gray).all()


def test_bool_images_are_visible_as_uint8():
    mask = np.zeros((12, 12), bool)
    mask[3:9, 3:9] = True
    out = to_rgb_uint8(mask)
    assert out.dtype == np.uint8
    assert (out[mask] == 255).all() and (out[~mask] == 0).all()
    assert to_gray_float(mask)[mask].min() == pytest.approx(1.0, abs=1e-3)


def test_images_over_the_pixel_budget_are_refused_by_name(monkeypatch, tmp_path):
    img = np.zeros((300, 400), np.uint8)  # 0.12 megapixels
    assert check_image(img, max_pixels=120_000) is not None
    with pytest.raises(InputError, match=r"big\.png: 300x400 pixels .*crop or downsample"):
        check_image(img, name="big.png", max_pixels=119_999)
    # the default budget comes from the environment, for the CLI and the widget alike
    monkeypatch.setenv("SAMPHASE_MAX_MEGAPIXELS", "0.1")
    with pytest.raises(InputError, match="SAMPHASE_MAX_MEGAPIXELS"):
        to_rgb_uint8(img)
    from napari_samphase.core.image.io import write_png

    write_png(tmp_path / "big.png", img)
    with pytest.raises(InputError, match="0.1 megapixels"):
        load_image(tmp_path / "big.png")
    monkeypatch.setenv("SAMPHASE_MAX_MEGAPIXELS", "0.2")
    assert load_image(tmp_path / "big.png").shape == (300, 400)
    monkeypatch.setenv("SAMPHASE_MAX_MEGAPIXELS", "lots")
    with pytest.raises(InputError, match="positive number"):
        check_image(img)


def test_default_pixel_budget_is_100_megapixels(monkeypatch):
    monkeypatch.delenv("SAMPHASE_MAX_MEGAPIXELS", raising=False)
    # a broadcast view: 101 megapixels without allocating them
    huge = np.broadcast_to(np.zeros(1, np.uint8), (10_100, 10_000))
    with pytest.raises(InputError, match="101 megapixels"):
        check_image(huge)
