"""Choosing the torch device: auto = CUDA, then Apple MPS, then CPU."""

from __future__ import annotations

from napari_samphase.core.errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | None = "auto"):
    import torch

    name = (device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise InputError(
            f"unknown device {device!r} (choose from {', '.join(DEVICE_CHOICES)})"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for but no CUDA GPU is available")
    if dev.type == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise InputError("device 'mps' was asked for but Apple MPS is not available")
    return dev
