"""The fine-tuning run's options (:class:`SamTrainConfig`, saved in the checkpoint) and
their checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.errors import InputError, check_choice
from napari_samphase.core.training.losses import MASK_LOSSES
from napari_samphase.core.training.runs import SCHEDULE_FACTORS

TRAIN_MODES = ("decoder", "full")
SCHEDULES = tuple(SCHEDULE_FACTORS)
LOSSES = tuple(MASK_LOSSES)

# Config fields a resumed run may change; every other one must match the saved state.
RESUMABLE_CHANGES = ("epochs", "max_minutes", "patience", "device")


@dataclass
class SamTrainConfig:
    """Everything a fine-tuning run depends on (saved in the checkpoint)."""

    base: str = "demo-synthetic"  # registered model name or a checkpoint path
    architecture: str = "vit_b"  # of a base checkpoint that does not name its own
    mode: str = "decoder"  # decoder: encoders frozen, embeddings cached; full: all trains
    encoder_blocks: int = 0  # decoder mode: also train the last N image-encoder blocks
    adapter: str = "none"  # none | gray: learned 1 -> 3 channel input adapter
    epochs: int = 20
    max_minutes: float | None = None  # stop (keeping the best) after this long
    lr: float = 1e-4  # Adam, the method's rate
    schedule: str = "cosine"
    loss: str = "bce_dice"
    iou_loss_weight: float = 1.0  # MSE on the predicted-IoU head
    prompts_per_image: int = 8  # objects sampled per image per step
    box_prob: float = 0.5  # chance that a prompt is a jittered box, not a point
    negative_points: int = 1  # at most this many negative points outside the object
    corrective_rounds: int = 2  # extra rounds of clicks where the prediction is wrong
    augment: bool = True  # flips, 90-degree rotations (+ intensity jitter if not cached)
    val_fraction: float = 0.2  # by image, seeded
    patience: int = 5  # early stopping on validation loss (0: never)
    seed: int = 0
    device: str = "auto"


def check_config(config: SamTrainConfig) -> SamTrainConfig:
    """``config`` if every option is usable; one :class:`InputError` otherwise."""
    from napari_samphase.core.sam.adapter import ADAPTERS

    check_choice(config.mode, TRAIN_MODES, "mode")
    check_choice(config.schedule, SCHEDULES, "schedule")
    check_choice(config.loss, LOSSES, "loss")
    check_choice(config.adapter, ADAPTERS, "adapter")
    for name, low in (
        ("epochs", 1),
        ("encoder_blocks", 0),
        ("prompts_per_image", 1),
        ("negative_points", 0),
        ("corrective_rounds", 0),
        ("patience", 0),
    ):
        value = getattr(config, name)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be a whole number >= {low}, not {value!r}")
    if config.encoder_blocks and config.mode != "decoder":
        raise InputError("encoder_blocks applies to mode 'decoder' (mode 'full' trains all)")
    if not 0.0 <= config.val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), not {config.val_fraction}")
    if not 0.0 <= config.box_prob <= 1.0:
        raise InputError(f"box_prob must be in [0, 1], not {config.box_prob}")
    if not config.lr > 0:
        raise InputError(f"lr must be positive, not {config.lr}")
    if not config.iou_loss_weight >= 0:
        raise InputError(f"iou_loss_weight must be >= 0, not {config.iou_loss_weight}")
    if config.max_minutes is not None and not config.max_minutes > 0:
        raise InputError(f"max_minutes must be positive, not {config.max_minutes}")
    from napari_samphase.core.sam.registry import get_spec

    get_spec(config.architecture)  # unknown -> InputError listing the models
    return config
