"""Model registry: name -> architecture builder, checkpoint source and thresholds.

Checkpoints come from a path the user gives, from the package (``demo-synthetic``),
or are downloaded once from the official URLs into a cache directory
(``SAMPHASE_CACHE_DIR`` or the platform cache), SHA-256 verified (:mod:`.weights`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

from napari_samphase.core.errors import InputError
from napari_samphase.core.sam.architectures import _build_official, build_demo_sam

OFFICIAL = "https://dl.fbaipublicfiles.com/segment_anything/"


@dataclass(frozen=True)
class Thresholds:
    """Segment-everything filters that suit one model (SAM's own defaults here).

    They travel with the model: a :class:`ModelSpec` gives an architecture's
    defaults, a checkpoint saved by :func:`loading.save_checkpoint` overrides them,
    and ``SamSession.thresholds`` holds the result.
    """

    pred_iou_thresh: float = 0.88  # keep masks whose predicted IoU is above this
    stability_thresh: float = 0.95  # ... and whose stability score is at least this

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


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
    pred_iou_thresh: float = Thresholds.pred_iou_thresh
    stability_thresh: float = Thresholds.stability_thresh

    @property
    def thresholds(self) -> Thresholds:
        return Thresholds(self.pred_iou_thresh, self.stability_thresh)


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
