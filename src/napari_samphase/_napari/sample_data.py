"""Sample data that needs no download: a generated micrograph (with its nominal pixel
size as the layers' scale and units), and scikit-image's coins (in pixels)."""

from __future__ import annotations


def synthetic_micrograph():
    from napari_samphase.core.image.synthetic import SAMPLE_PIXEL_SIZE, sample_micrograph

    m = sample_micrograph()
    scale, units = SAMPLE_PIXEL_SIZE.napari_scale()
    placed = {"scale": scale, "units": units}
    return [
        (m.image, {"name": "synthetic micrograph", **placed}, "image"),
        (m.phases, {"name": "true phases", "visible": False, "opacity": 0.5, **placed}, "labels"),
    ]


def coins():
    from skimage import data

    return [(data.coins(), {"name": "coins"}, "image")]
