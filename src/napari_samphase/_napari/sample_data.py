"""Sample data that needs no download: a generated micrograph, and scikit-image's coins."""

from __future__ import annotations


def synthetic_micrograph():
    from napari_samphase.core.image.synthetic import sample_micrograph

    m = sample_micrograph()
    return [
        (m.image, {"name": "synthetic micrograph"}, "image"),
        (m.phases, {"name": "true phases", "visible": False, "opacity": 0.5}, "labels"),
    ]


def coins():
    from skimage import data

    return [(data.coins(), {"name": "coins"}, "image")]
