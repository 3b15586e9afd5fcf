"""Content hashes that identify weights whatever the file format or device."""

from __future__ import annotations

import hashlib


def weights_sha256(state_dict: dict) -> str:
    """SHA-256 over a state dict's tensors: for each name in sorted order, the name,
    dtype, shape and raw bytes. Independent of the device, the dict's order and the
    file format; changes with any weight."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # raw bytes via uint8 (numpy has no bfloat16); reshape(-1) makes it contiguous
        flat = tensor.cpu().reshape(-1)
        if flat.numel():
            digest.update(flat.view(torch.uint8).numpy())
    return digest.hexdigest()
