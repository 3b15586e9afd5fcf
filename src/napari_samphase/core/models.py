"""Model registry: name -> architecture builder and checkpoint source.

Checkpoints come from a path the user gives, from the package (``demo-synthetic``),
or are downloaded once from the official URLs into a cache directory
(``SAMPHASE_CACHE_DIR`` or the platform cache), SHA-256 verified by pooch.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from .errors import CheckpointError, InputError

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CACHE_ENV = "SAMPHASE_CACHE_DIR"
OFFICIAL = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable  # () -> segment_anything Sam with random weights
    filename: str
    sha256: str
    url: str | None = None  # None: shipped inside the package (ASSETS)
    size_mb: float = 0.0
    description: str = ""
    # segment-everything thresholds that suit this model (SAM's own defaults)
    pred_iou_thresh: float = 0.88
    stability_thresh: float = 0.95


def _build_official(kind: str):
    from segment_anything import sam_model_registry

    return sam_model_registry[kind]()


def build_demo_sam():
    """Small SAM architecture (img_size 256, patch 16) from segment-anything's classes."""
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    img_size, patch, dim = 256, 16, 128
    sam = Sam(
        image_encoder=ImageEncoderViT(
            img_size=img_size,
            patch_size=patch,
            embed_dim=96,
            depth=4,
            num_heads=4,
            mlp_ratio=3,
            out_chans=dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=0,
            global_attn_indexes=(),
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=dim,
            image_embedding_size=(img_size // patch, img_size // patch),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=512, num_heads=4),
            transformer_dim=dim,
            iou_head_depth=3,
            iou_head_hidden_dim=128,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


DEMO_MODEL = "demo-synthetic"

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "vit_b",
            partial(_build_official, "vit_b"),
            "sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            OFFICIAL + "sam_vit_b_01ec64.pth",
            375,
            "SAM ViT-B (Meta), the fastest official model",
        ),
        ModelSpec(
            "vit_l",
            partial(_build_official, "vit_l"),
            "sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            OFFICIAL + "sam_vit_l_0b3195.pth",
            1250,
            "SAM ViT-L (Meta)",
        ),
        ModelSpec(
            "vit_h",
            partial(_build_official, "vit_h"),
            "sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            OFFICIAL + "sam_vit_h_4b8939.pth",
            2560,
            "SAM ViT-H (Meta), the most accurate official model",
        ),
        ModelSpec(
            DEMO_MODEL,
            build_demo_sam,
            "demo-synthetic.pth",
            # Updated by scripts/train_demo_model.py; tests check it matches the file.
            "8c9ff2dd79cd2b9e0dce07d78061028377108bdbcaa136ccbc5fcebfb843e235",
            None,
            3,
            "Test/demo asset trained on synthetic micrographs only; not for real data",
            # A small model trained for minutes predicts IoU and logits less sharply.
            pred_iou_thresh=0.5,
            stability_thresh=0.8,
        ),
    )
}


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise InputError(f"unknown model {name!r} (choose from {', '.join(MODELS)})") from None


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("napari-samphase"))


def sha256sum(path: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _verified(path: Path, sha: str) -> bool:
    """True if ``path`` has hash ``sha``; a stamp (size, mtime) avoids re-hashing GBs."""
    if not path.is_file():
        return False
    stat = path.stat()
    key = f"{sha} {stat.st_size} {stat.st_mtime_ns}"
    stamp = _stamp(path)
    if stamp.is_file() and stamp.read_text() == key:
        return True
    if sha256sum(path) != sha:
        return False
    with contextlib.suppress(OSError):  # read-only cache: verify again next time
        stamp.write_text(key)
    return True


def is_cached(name: str) -> bool:
    spec = get_spec(name)
    if spec.url is None:
        return (ASSETS / spec.filename).is_file()
    return _verified(cache_dir() / spec.filename, spec.sha256)


class _CallbackBar:
    """tqdm-like object pooch can drive, forwarding to a progress callback."""

    def __init__(self, progress, message: str) -> None:
        self.progress, self.message, self.total, self.n = progress, message, 0, 0

    def update(self, k: int) -> None:
        self.n += k
        self.progress(self.n, self.total or 1, self.message)

    def reset(self) -> None:
        self.n = 0

    def close(self) -> None:
        pass


def download(name: str, progress=None) -> Path:
    """Fetch an official checkpoint into the cache (verified), or return the cached file.

    ``progress``: None for a tqdm bar on stderr, or a ``(done, total, message)`` callback.
    """
    spec = get_spec(name)
    if spec.url is None:
        return ASSETS / spec.filename
    target = cache_dir() / spec.filename
    if _verified(target, spec.sha256):
        return target
    import pooch

    bar = True if progress is None else _CallbackBar(progress, f"downloading {spec.filename}")
    pooch.get_logger().setLevel("WARNING")  # our own progress bar says what is happening
    try:
        # pooch downloads to a temporary file and moves it into place only after the
        # SHA-256 matches, so a broken transfer never leaves a loadable file behind.
        path = pooch.retrieve(
            spec.url,
            known_hash=f"sha256:{spec.sha256}",
            fname=spec.filename,
            path=target.parent,
            progressbar=bar,
        )
    except ValueError as exc:  # pooch: hash mismatch
        raise CheckpointError(
            f"downloaded {spec.filename} does not match its SHA-256 ({exc}); try again"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"cannot download {spec.filename} from {spec.url} ({type(exc).__name__}). "
            f"Offline? Download it by hand and put it at {target}, "
            f"or pass its path with --checkpoint."
        ) from None
    _verified(Path(path), spec.sha256)
    return Path(path)


def resolve_checkpoint(
    name: str, checkpoint: str | Path | None = None, fetch: bool = True, progress=None
) -> Path:
    """The file to load for ``name``: the user's path, the bundled asset or the cache."""
    spec = get_spec(name)
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        return path
    if spec.url is None:
        path = ASSETS / spec.filename
        if not path.is_file():
            raise CheckpointError(f"bundled checkpoint {path} is missing; reinstall the package")
        if not _verified(path, spec.sha256):
            raise CheckpointError(f"bundled checkpoint {path} is corrupted (SHA-256 mismatch)")
        return path
    target = cache_dir() / spec.filename
    if _verified(target, spec.sha256):
        return target
    if target.exists():
        # A partial or corrupted file: never load it; fetch a fresh copy when allowed.
        if not fetch:
            raise CheckpointError(f"{target} is incomplete or corrupted (SHA-256 mismatch)")
    elif not fetch:
        raise CheckpointError(
            f"model {name} is not downloaded: run `samphase download --model {name}` "
            f"or put {spec.filename} ({spec.url}) at {target}"
        )
    return download(name, progress=progress)


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

    from .device import resolve_device

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
