"""Provenance: what made a result (model, checkpoint hash, thresholds, features, K, seed,
pixel size, package version), for ``layer.metadata`` and the CLI's JSON sidecar."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np


def plain(value):
    """``value`` with numpy scalars and arrays, tuples and paths made JSON types."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value


def pixel_size_record(pixel_size) -> dict:
    """``{"um_per_px": ..., "source": ...}``; ``um_per_px`` None when unknown."""
    if pixel_size is None or not pixel_size.known:
        return {"um_per_px": None, "source": "unknown"}
    return {"um_per_px": pixel_size.um, "source": pixel_size.source}


def provenance(
    *,
    model: str | None = None,
    checkpoint_sha256: str | None = None,
    thresholds: dict | None = None,
    proposer: str | None = None,
    features: str | None = None,
    k: int | str | None = None,
    seed: int | None = None,
    phase_mode: str | None = None,
    pixel_size=None,
    **extra,
) -> dict:
    """What made a result, as a JSON-serialisable dict.

    Parameters
    ----------
    model, checkpoint_sha256, thresholds, proposer, features, k, seed, phase_mode
        The settings; None where they did not apply (kept, so a reader sees the key).
    pixel_size : PixelSize, optional
        Stored as ``{"um_per_px": ..., "source": ...}`` (``um_per_px`` None when unknown).
    **extra
        Further fields (e.g. ``image``, ``n_phases``), numpy values made plain.

    Returns
    -------
    dict
        The fields plus ``package``, ``package_version`` and ``created`` (UTC, ISO 8601).
    """
    from napari_samphase import __version__

    record = {
        "package": "napari-samphase",
        "package_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "model": model,
        "checkpoint_sha256": checkpoint_sha256,
        "thresholds": thresholds,
        "proposer": proposer,
        "features": features,
        "k": k,
        "seed": seed,
        "phase_mode": phase_mode,
        "pixel_size": pixel_size_record(pixel_size),
        **extra,
    }
    return plain(record)


def write_provenance(prov: dict, path: str | Path) -> None:
    """Write a provenance dict as indented JSON."""
    with open(path, "w") as fh:
        json.dump(plain(prov), fh, indent=2)
        fh.write("\n")
