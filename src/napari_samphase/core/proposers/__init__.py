"""Mask proposers behind one interface, chosen by name (registry, no if/else chain).

``sam`` needs a SAM checkpoint; ``watershed``, ``threshold`` and ``superpixels``
need no weights and no GPU. The SAM path never falls back to the weight-free one
silently: the user picks it.
"""

from __future__ import annotations

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.labels import Segmentation
from napari_samphase.core.progress import ProgressCallback
from napari_samphase.core.proposers.base import Proposer
from napari_samphase.core.proposers.sam import SamProposer
from napari_samphase.core.proposers.superpixels import SuperpixelProposer
from napari_samphase.core.proposers.threshold import ThresholdProposer
from napari_samphase.core.proposers.watershed import WatershedProposer

PROPOSERS: dict[str, type] = {
    "sam": SamProposer,
    "superpixels": SuperpixelProposer,
    "threshold": ThresholdProposer,
    "watershed": WatershedProposer,
}


def make_proposer(name: str, **options) -> Proposer:
    """The proposer registered as ``name``, with its dataclass options."""
    try:
        cls = PROPOSERS[name]
    except KeyError:
        raise InputError(
            f"unknown proposer {name!r} (choose from {', '.join(PROPOSERS)})"
        ) from None
    fields = cls.__dataclass_fields__
    unknown = set(options) - set(fields)
    if unknown:
        raise InputError(f"proposer {name!r} has no option(s) {', '.join(sorted(unknown))}")
    return cls(**options)


def segment(
    image, proposer: str = "sam", progress: ProgressCallback | None = None, **options
) -> Segmentation:
    """Instance masks of ``image`` from the named proposer."""
    return make_proposer(proposer, **options).propose(image, progress=progress)


__all__ = [
    "PROPOSERS",
    "Proposer",
    "make_proposer",
    "segment",
    *(c.__name__ for c in PROPOSERS.values()),
]
