"""U-Net checkpoints: the weights with what predicting needs (architecture, the class
value and name of each output, the input normalisation) and how they were trained::

    {"model": state_dict,
     "samphase_unet": {"format": 1, "unet": {"in_channels": 1, "classes": 2, ...},
                       "classes": [0, 255], "class_names": ["membrane", "cell"],
                       "normalisation": {"method": "percentile", "low": 1.0, ...},
                       "metrics": {...}, "weights_sha256": "3f9c...", ...}}

Loaded with ``torch.load(weights_only=True)``: the metadata holds plain values only,
and a file holding pickled Python objects is refused, never unpickled. Importing this
module does not import torch.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.hashing import weights_sha256  # noqa: F401 (re-exported)
from napari_samphase.core.unet.config import UNetConfig, check_unet_config

UNET_FORMAT = 1
META_KEY = "samphase_unet"
_RESERVED = ("format", "unet", "classes", "class_names", "normalisation", "weights_sha256")
_PLAIN = (str, int, float, bool, type(None))


def _plain(value, where: str):
    """Numpy scalars as Python numbers; anything weights-only loading cannot read back
    is refused now rather than when loading."""
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        value = value.item()
    if type(value) not in _PLAIN:
        raise InputError(f"{where} is a {type(value).__name__}: it cannot be saved")
    return value


def save_unet(
    path: str | Path,
    model,
    unet_config: UNetConfig,
    classes,
    class_names,
    normalisation: dict,
    metrics: dict | None = None,
    **metadata,
) -> Path:
    """Write ``model``'s weights and what predicting with them needs.

    Parameters
    ----------
    path
        Where to write (through ``path.part``, moved into place: never half a file).
    model
        The :class:`.model.UNet`.
    unet_config
        Its architecture.
    classes
        The label value of each of the K outputs.
    class_names
        A name for each of the K outputs.
    normalisation
        The input normalisation (:data:`.inputs.NORMALISATION`).
    metrics
        The run's metrics (best epoch, losses, ...).
    **metadata
        More plain values to keep (training config, data summary, versions).
    """
    import torch

    classes, class_names = [int(c) for c in classes], [str(n) for n in class_names]
    if not len(classes) == len(class_names) == unet_config.classes:
        raise InputError(
            f"{len(classes)} class values and {len(class_names)} names for a network "
            f"with {unet_config.classes} outputs"
        )
    clash = sorted(set(metadata) & set(_RESERVED))
    if clash:
        raise InputError(f"metadata may not set {', '.join(clash)}: they are set here")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = _plain(
        {
            "format": UNET_FORMAT,
            "unet": asdict(unet_config),
            "classes": classes,
            "class_names": class_names,
            "normalisation": dict(normalisation),
            "metrics": metrics or {},
            "weights_sha256": weights_sha256(state),
            **metadata,
        },
        "metadata",
    )
    path = Path(path)
    part = path.with_name(path.name + ".part")
    try:
        torch.save({"model": state, META_KEY: meta}, part)
        os.replace(part, path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:  # Ctrl+C mid-write: no partial file left
        part.unlink(missing_ok=True)
        raise
    return path


def read_unet(path: str | Path) -> tuple[dict, dict]:
    """(state dict, metadata) of a U-Net checkpoint, checked; :class:`InputError` for
    a missing, unreadable, foreign, newer or altered file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such U-Net checkpoint")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except Exception as exc:
        reason = str(exc).split("WeightsUnpickler error:")[-1].strip().splitlines()
        first = reason[0][:120] if reason else type(exc).__name__
        raise InputError(
            f"{path} is not a readable U-Net checkpoint ({first}); it may be truncated, "
            "corrupted or hold pickled objects (never unpickled here)"
        ) from None
    meta = obj.get(META_KEY) if isinstance(obj, dict) else None
    if not isinstance(meta, dict) or not isinstance(obj.get("model"), dict):
        raise InputError(f"{path} is not a U-Net checkpoint written by napari-samphase")
    if int(meta.get("format", 0)) > UNET_FORMAT:
        raise InputError(f"{path} was written by a newer napari-samphase; update it")
    state = obj["model"]
    if meta.get("weights_sha256") != weights_sha256(state):
        raise InputError(
            f"{path}: the weights do not match their recorded hash: the file was altered or damaged"
        )
    return state, meta


def unet_config(meta: dict, path="checkpoint") -> UNetConfig:
    """The architecture a checkpoint's metadata records."""
    known = {f.name for f in fields(UNetConfig)}
    given = meta.get("unet")
    if not isinstance(given, dict) or set(given) - known:
        raise InputError(f"{path}: the recorded U-Net architecture is not one this version knows")
    return check_unet_config(UNetConfig(**given))


def load_unet(path: str | Path, device="cpu"):
    """(model in eval mode on ``device``, metadata) from :func:`save_unet`'s file.

    The metadata gains ``checkpoint`` (the path) and ``sha256`` (of the file).

    Parameters
    ----------
    path
        The checkpoint.
    device
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    """
    from napari_samphase.core.device import resolve_device
    from napari_samphase.core.unet.model import UNet

    state, meta = read_unet(path)
    config = unet_config(meta, path)
    if len(meta.get("classes", [])) != config.classes:
        raise InputError(f"{path}: the class values do not match the network's outputs")
    model = UNet(config)
    try:
        model.load_state_dict(state)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: the weights do not fit the recorded network ({first})") from None
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    meta = {**meta, "checkpoint": str(path), "sha256": digest.hexdigest()}
    return model.to(resolve_device(device)).eval(), meta
