"""Building a registered model and loading its weights."""

from __future__ import annotations

from pathlib import Path

from napari_samphase.core.errors import CheckpointError
from napari_samphase.core.sam.registry import get_spec
from napari_samphase.core.sam.weights import resolve_checkpoint


def build_sam(name: str):
    """The architecture of ``name`` with random weights (for speed measurements)."""
    return get_spec(name).build()


def load_sam(
    name: str = "vit_b",
    checkpoint: str | Path | None = None,
    device="auto",
    fetch: bool = True,
    progress=None,
):
    """Build model ``name`` and load its weights; returns the eval-mode ``Sam`` on ``device``."""
    import torch

    from napari_samphase.core.device import resolve_device

    path = resolve_checkpoint(name, checkpoint, fetch=fetch, progress=progress)
    sam = build_sam(name)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}): "
            "the file may be truncated or corrupted"
        ) from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]
    try:
        sam.load_state_dict(state)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} does not fit model {name}: {first}") from None
    return sam.to(resolve_device(device)).eval()
