"""Provenance: what made a result (model, checkpoint hash, thresholds, features, K, seed,
pixel size, package version), for ``layer.metadata`` and the CLI's JSON sidecar."""

from __future__ import annotations

from pathlib import Path


def provenance(
    *,
    model: str | None = None,
    checkpoint_sha256: str | None = None,
    thresholds: dict | None = None,
    proposer: str | None = None,
    features: str | None = None,
    k: int | None = None,
    seed: int | None = None,
    phase_mode: str | None = None,
    pixel_size=None,
    **extra,
) -> dict:
    """A JSON-serialisable dict of the given fields plus ``package_version`` and ``created``
    (UTC ISO time); ``pixel_size`` (a PixelSize) as ``{"um_per_px": ..., "source": ...}``."""
    raise NotImplementedError


def write_provenance(prov: dict, path: str | Path) -> None:
    raise NotImplementedError
