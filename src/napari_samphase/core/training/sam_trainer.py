"""Fine-tuning SAM on the user's masks (skeleton: the API the CLI and widget use).

Implemented by the training work package; see docs/fine-tuning.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from napari_samphase.core.progress import ProgressCallback

TRAIN_MODES = ("decoder", "full")
SCHEDULES = ("cosine", "step", "constant")
LOSSES = ("bce_dice", "focal_dice")


@dataclass
class SamTrainConfig:
    """Everything a fine-tuning run depends on (saved in the checkpoint)."""

    base: str = "demo-synthetic"  # registered model name or a checkpoint path
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
    augment: bool = True  # flips, 90-degree rotations (+ intensity jitter in full mode)
    val_fraction: float = 0.2  # by image, seeded
    patience: int = 5  # early stopping on validation loss (0: never)
    seed: int = 0
    device: str = "auto"


@dataclass
class EpochReport:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float | None  # None when there is no validation image
    val_iou: float | None  # mean IoU of one-click predictions on validation objects
    seconds: float


@dataclass
class TrainResult:
    checkpoint: Path  # the best epoch's checkpoint (load with SamSession.from_name)
    best_epoch: int
    stopped: str  # "epochs", "early_stop", "time" or "cancelled"
    history: list[EpochReport] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)  # what the checkpoint carries


def train_sam(
    pairs,
    config: SamTrainConfig,
    out: str | Path,
    progress: ProgressCallback | None = None,
    on_epoch=None,
    resume: bool = False,
) -> TrainResult:
    """Fine-tune ``config.base`` on ``pairs`` (``training.data.TrainingPair``) and write
    the best epoch's checkpoint to ``out``.

    ``progress(done, total, message)`` counts steps and may raise ``Cancelled``: the
    best checkpoint so far is kept and the result says ``stopped="cancelled"`` (if no
    epoch finished, ``Cancelled`` propagates and nothing is written). ``on_epoch`` gets
    each :class:`EpochReport`. ``resume`` continues from ``out``'s training state.
    """
    raise NotImplementedError
