"""Building a registered model, loading its weights, saving our own checkpoints.

Official SAM checkpoints are plain state dicts. Checkpoints this package writes
(:func:`save_checkpoint`, e.g. after fine-tuning) carry the architecture, the
segment-everything thresholds that suit the weights, the input adapter the weights
include (:mod:`.adapter`; attached again on loading) and a hash of the weights
(checked on loading), plus whatever the caller adds (here, a fine-tuning run's)::

    {"model": state_dict,
     "samphase": {"format": 1, "architecture": "vit_b",
                  "pred_iou_thresh": 0.86, "stability_thresh": 0.92,
                  "adapter": "gray", "weights_sha256": "3f9c...",
                  "base_sha256": "ec2d...", "config": {...},
                  "training_data": [...], "metrics": {...}}}

Both load with ``torch.load(weights_only=True)``: the metadata holds plain values only,
and a file holding pickled Python objects is refused, never unpickled.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from napari_samphase.core.errors import CheckpointError, InputError
from napari_samphase.core.hashing import weights_sha256  # noqa: F401 (re-exported)
from napari_samphase.core.sam.adapter import ADAPTERS, adapter_name, attach_adapter
from napari_samphase.core.sam.registry import Thresholds, get_spec
from napari_samphase.core.sam.weights import (
    file_errors,
    os_error,
    resolve_checkpoint,
    sha256sum,
)

CHECKPOINT_FORMAT = 1
META_KEY = "samphase"
_RESERVED = ("format", "architecture", *Thresholds.names(), "adapter", "weights_sha256")
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class LoadedModel:
    """A loaded SAM and what travels with its weights."""

    sam: object  # segment_anything ``Sam`` in eval mode, on the chosen device
    architecture: str  # registry name of the architecture
    thresholds: Thresholds  # the architecture's defaults, overridden by the checkpoint's
    checkpoint: Path
    sha256: str  # of the checkpoint file
    metadata: dict = field(default_factory=dict)  # the checkpoint's "samphase" entry

    @property
    def checkpoint_id(self) -> str:
        """Identifies the weights (a session's embedding key includes it)."""
        return f"{self.checkpoint}#{self.sha256}"


def build_sam(name: str):
    """The architecture of ``name`` with random weights (for speed measurements)."""
    return get_spec(name).build()


def load_model(
    name: str = "vit_b",
    checkpoint: str | Path | None = None,
    device="auto",
    fetch: bool = True,
    progress=None,
) -> LoadedModel:
    """Load a model's weights and the metadata that travels with them.

    Parameters
    ----------
    name
        Registered architecture (``MODELS``). With ``checkpoint``, it is used only when
        the checkpoint does not name its architecture itself.
    checkpoint
        A checkpoint file; None: the registered one (bundled, cached or downloaded).
    device
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    fetch
        Whether a missing official checkpoint may be downloaded.
    progress
        ``(done, total, message)`` callback for a download.
    """
    from napari_samphase.core.device import resolve_device

    path = resolve_checkpoint(name, checkpoint, fetch=fetch, progress=progress)
    state, meta = read_checkpoint(path)
    arch = meta.get("architecture", name)
    try:
        spec = get_spec(arch)
    except InputError:
        raise CheckpointError(
            f"{path} was saved for architecture {arch!r}, which this version does not know"
        ) from None
    recorded = meta.get("weights_sha256")
    if recorded is not None and recorded != weights_sha256(state):
        raise CheckpointError(
            f"{path}: the weights do not match their recorded hash: the file was altered or damaged"
        )
    kind = meta.get("adapter", "none")
    if not isinstance(kind, str) or kind not in ADAPTERS:
        raise CheckpointError(
            f"{path} uses input adapter {kind!r}, which this version does not know "
            f"(it knows {', '.join(ADAPTERS)})"
        )
    sam = attach_adapter(spec.build(), kind)  # before loading: its weights are in state
    try:
        sam.load_state_dict(state)
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CheckpointError(f"{path} does not fit model {arch}: {first}") from None
    if checkpoint is None:
        sha = spec.sha256  # verified by resolve_checkpoint
    else:
        with file_errors(path):
            sha = sha256sum(path)
    return LoadedModel(
        sam.to(resolve_device(device)).eval(),
        arch,
        _thresholds(meta, spec.thresholds, path),
        path,
        sha,
        meta,
    )


def load_sam(
    name: str = "vit_b",
    checkpoint: str | Path | None = None,
    device="auto",
    fetch: bool = True,
    progress=None,
):
    """The eval-mode ``Sam`` of :func:`load_model` (same parameters)."""
    return load_model(name, checkpoint, device=device, fetch=fetch, progress=progress).sam


def read_checkpoint(path: Path, mmap: bool = False) -> tuple[dict, dict]:
    """(state dict, "samphase" metadata or {}) from a checkpoint file, weights only.

    ``mmap``: map the tensors instead of reading them (torch.save's zip format, as
    :func:`save_checkpoint` writes): for the metadata alone of a large file."""
    import torch

    try:
        with warnings.catch_warnings():  # a plain pickle: our error says more
            warnings.filterwarnings("ignore", "Detected pickle protocol", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except OSError as exc:  # permissions and the like: not the file's content
        raise os_error(exc, path) from None
    except Exception as exc:
        raise CheckpointError(_unreadable(path, exc)) from None
    meta = {}
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj, meta = obj["model"], obj.get(META_KEY) or {}
    if not isinstance(obj, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{path} holds no state dict ({type(obj).__name__})")
    if int(meta.get("format", 1)) > CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} was written by a newer napari-samphase; update it")
    return obj, meta


def _unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused ``path``, in one line."""
    obj = _pickled_object(path, exc)
    if obj is not None:
        return (
            f"{path} holds pickled Python objects ({obj}), not a state dict: "
            "save model.state_dict() instead (it was not loaded: unpickling objects can "
            "run code)"
        )
    text = str(exc)
    # torch's weights-only refusal opens with advice about weights_only=False (never
    # taken here); its own reason follows "WeightsUnpickler error:"
    text = text.split("WeightsUnpickler error:")[-1]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    first = lines[0].split(". ")[0][:120] if lines else ""
    reason = type(exc).__name__ + (f": {first}" if first else "")
    return f"{path} is not a readable checkpoint ({reason}): it may be truncated or corrupted"


def _pickled_object(path: Path, exc: Exception) -> str | None:
    """The class or function a refused file wanted to import, if that was the reason."""
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    if found:  # torch.save's zip format: the weights-only unpickler names it
        return found.group(1)
    if "Weights only load failed" not in str(exc):
        return None
    # A plain pickle (pickle.dump, not torch.save): read its opcodes without running them.
    import pickletools

    strings: list[str] = []
    try:
        with open(path, "rb") as fh:
            for op, arg, _ in pickletools.genops(fh):
                if isinstance(arg, str):
                    strings.append(arg)
                if op.name in ("GLOBAL", "INST"):
                    return str(arg).replace(" ", ".")
                if op.name == "STACK_GLOBAL":
                    return ".".join(strings[-2:])
    except Exception:  # not a pickle at all
        return None
    return None


def _thresholds(meta: dict, default: Thresholds, path) -> Thresholds:
    try:
        given = {k: float(meta[k]) for k in Thresholds.names() if meta.get(k) is not None}
    except (TypeError, ValueError):
        raise CheckpointError(f"{path} has a threshold that is not a number") from None
    return replace(default, **given)


def save_checkpoint(
    sam, path: str | Path, architecture: str, thresholds: Thresholds | None = None, **metadata
) -> Path:
    """Save ``sam``'s weights with the metadata :func:`load_model` reads back.

    Parameters
    ----------
    sam
        A segment_anything ``Sam`` of architecture ``architecture``.
    path
        Where to write (written to ``path.part`` first, then moved into place).
    architecture
        Registered architecture name (``MODELS``).
    thresholds
        Segment-everything thresholds that suit these weights; None: the
        architecture's defaults.
    **metadata
        More plain values (str, numbers, bool, None, lists and dicts of them) to keep,
        e.g. the training data and epochs. Set here, never by the caller: ``format``,
        ``architecture``, the thresholds, ``adapter`` (``sam``'s input adapter) and
        ``weights_sha256`` (:func:`weights_sha256` of the saved weights).
    """
    import torch

    spec = get_spec(architecture)
    clash = sorted(set(metadata) & set(_RESERVED))
    if clash:
        raise InputError(f"metadata may not set {', '.join(clash)}: they are set here")
    state = sam.state_dict()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "architecture": spec.name,
        **asdict(thresholds or spec.thresholds),
        "adapter": adapter_name(sam),
        "weights_sha256": weights_sha256(state),
        **metadata,
    }
    meta = _plain(meta, "metadata")
    path = Path(path)
    part = path.with_name(path.name + ".part")
    try:
        with file_errors(path, "write"):
            torch.save({"model": state, META_KEY: meta}, part)
            os.replace(part, path)
    except BaseException:  # a full disk, a Ctrl+C mid-write: no partial file left
        part.unlink(missing_ok=True)
        raise
    return path


def _plain(value, where: str):
    """``value`` with numpy scalars as Python numbers; weights-only loading reads plain
    values only, so anything else is refused when saving rather than when loading."""
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise InputError(f"{where}: keys must be strings, got {bad[0]!r}")
        return {k: _plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0:
        value = value.item()
    if type(value) not in _PLAIN:
        raise InputError(
            f"{where} is a {type(value).__name__}: only str, numbers, bool, None, lists "
            "and dicts can be saved"
        )
    return value
