import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import normalize_to_uint8, to_gray_float, to_rgb_uint8
from napari_samphase.core.image.io import load_image


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

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 20, 20), np.uint16))
    with pytest.raises(InputError, match="3D"):
        load_image(tmp_path / "stack.tif")
    tifffile.imwrite(tmp_path / "ok.tif", np.ones((20, 20), np.uint16))
    assert load_image(tmp_path / "ok.tif").dtype == np.uint16
