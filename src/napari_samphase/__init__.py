"""napari-samphase: material phases of a micrograph from Segment Anything masks.

The package imports nothing heavy at import time: torch, segment_anything and
scikit-learn load when a function that needs them is first called.
"""

from importlib import import_module

__version__ = "0.1.0"

# Public names -> module that defines them (resolved lazily, PEP 562).
_LAZY = {
    "SamphaseError": "napari_samphase.core.errors",
    "InputError": "napari_samphase.core.errors",
    "CheckpointError": "napari_samphase.core.errors",
    "Cancelled": "napari_samphase.core.progress",
    "load_image": "napari_samphase.core.image.io",
    "make_micrograph": "napari_samphase.core.image.synthetic",
    "load_sam": "napari_samphase.core.sam.loading",
    "MODELS": "napari_samphase.core.sam.registry",
    "SamSession": "napari_samphase.core.sam.session",
    "segment": "napari_samphase.core.proposers",
    "PROPOSERS": "napari_samphase.core.proposers",
    "find_phases": "napari_samphase.core.phases.clustering",
    "PhaseQuery": "napari_samphase.core.phases.query",
    "phase_table": "napari_samphase.core.outputs.report",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'napari_samphase' has no attribute {name!r}")
