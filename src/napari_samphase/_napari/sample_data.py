"""Sample data that needs no download: a generated micrograph, and scikit-image's coins."""

from __future__ import annotations


def synthetic_micrograph():
    from ..core.synthetic import make_micrograph

    m = make_micrograph(seed=0)
    return [
        (m.image, {"name": "synthetic micrograph"}, "image"),
        (m.phases, {"name": "true phases", "visible": False, "opacity": 0.5}, "labels"),
    ]


def coins():
    from skimage import data

    return [(data.coins(), {"name": "coins"}, "image")]
