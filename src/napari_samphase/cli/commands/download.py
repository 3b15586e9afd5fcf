"""``samphase download``: fetch and verify a checkpoint."""

from __future__ import annotations


def cmd_download(args) -> int:
    from napari_samphase.core.sam.registry import get_spec
    from napari_samphase.core.sam.weights import download

    spec = get_spec(args.model)
    path = download(args.model, progress=None)
    print(f"{spec.name}: {path} (SHA-256 verified)")
    return 0
