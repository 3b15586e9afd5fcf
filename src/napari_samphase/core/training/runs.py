"""What every trainer here shares: learning-rate schedules, epoch reports, the run's
state between epochs, and writing a state file atomically."""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from napari_samphase.core.errors import InputError


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / max(total, 1)))


def _step(step: int, total: int) -> float:
    # x 0.1 at half and at three quarters of the run
    return 0.1 ** sum(step >= f * total for f in (0.5, 0.75))


def _constant(step: int, total: int) -> float:
    return 1.0


# schedule -> (step, total steps) -> factor on the learning rate
SCHEDULE_FACTORS: dict[str, Callable[[int, int], float]] = {
    "cosine": _cosine,
    "step": _step,
    "constant": _constant,
}


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


@dataclass
class RunState:
    """Where a run stands after its last finished epoch."""

    epoch: int = 0  # epochs finished
    history: list = field(default_factory=list)
    best_loss: float | None = None
    best_epoch: int | None = None
    since_best: int = 0

    def improved(self, monitored: float, epoch: int) -> bool:
        """Record ``monitored`` for ``epoch``; True when it is the best so far."""
        if self.best_loss is None or monitored < self.best_loss:
            self.best_loss, self.best_epoch, self.since_best = monitored, epoch, 0
            return True
        self.since_best += 1
        return False

    def as_state(self) -> dict:
        return {
            "epoch": self.epoch,
            "best_epoch": self.best_epoch,
            "best_loss": self.best_loss,
            "since_best": self.since_best,
            "history": [asdict(r) for r in self.history],
        }

    @classmethod
    def from_state(cls, state: dict) -> RunState:
        known = {f.name for f in fields(EpochReport)}
        history = [
            EpochReport(**{k: v for k, v in h.items() if k in known}) for h in state["history"]
        ]
        return cls(
            state["epoch"], history, state["best_loss"], state["best_epoch"], state["since_best"]
        )


def state_path(out: Path) -> Path:
    """The resumable state beside checkpoint ``out``."""
    return out.with_name(out.name + ".state")


def out_of_time(max_minutes: float | None, t0: float) -> bool:
    return max_minutes is not None and time.perf_counter() - t0 > 60 * max_minutes


def save_atomically(obj, path: Path) -> None:
    """``torch.save`` to ``path`` through a ``.part`` file, so a crash never leaves a
    half-written state where a good one was."""
    import torch

    part = path.with_name(path.name + ".part")
    try:
        torch.save(obj, part)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise


def check_same_config(saved: dict, now: dict, resumable, path: Path) -> None:
    """A resumed run may change only the ``resumable`` options of the saved one."""
    differ = [k for k in now if k not in resumable and saved.get(k) != now[k]]
    if differ:
        raise InputError(
            f"resume: {', '.join(differ)} differ from the run saved in {path} "
            f"(only {', '.join(resumable)} may change)"
        )


def now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("napari-samphase")
    except PackageNotFoundError:
        return "unknown"


def metrics_of(run: RunState) -> dict:
    """The checkpoint's ``metrics``: the epoch just recorded (the best) and the history."""
    best = run.history[-1]
    return {
        "best_epoch": best.epoch,
        "train_loss": best.train_loss,
        "val_loss": best.val_loss,
        "val_iou": best.val_iou,
        "history": [asdict(r) for r in run.history],
    }


def finish_epoch(
    run: RunState,
    rep: EpochReport,
    *,
    out: Path,
    lr: float,
    save_best: Callable[[], None],
    save_state: Callable[[], None],
    on_epoch=None,
    patience: int = 0,
    max_minutes: float | None = None,
    t0: float = 0.0,
) -> str | None:
    """Record an epoch's report the same way for every trainer: refuse a loss that is not
    finite, write the checkpoint when the monitored loss (validation, else training)
    improved, write the resumable state, tell ``on_epoch``. Returns why the run stops
    now (``"early_stop"`` or ``"time"``), or None to go on."""
    run.history.append(rep)
    run.epoch = rep.epoch
    monitored = rep.train_loss if rep.val_loss is None else rep.val_loss
    if not math.isfinite(rep.train_loss) or not math.isfinite(monitored):
        kept = f"; epoch {run.best_epoch} is kept in {out}" if run.best_epoch else ""
        raise InputError(
            f"the loss is not finite at epoch {rep.epoch} (a learning rate too high "
            f"for these data? lr={lr:g}){kept}"
        )
    if run.improved(monitored, rep.epoch):
        save_best()
    save_state()
    if on_epoch is not None:
        on_epoch(rep)
    if patience and run.since_best >= patience:
        return "early_stop"
    if out_of_time(max_minutes, t0):
        return "time"
    return None


STATE_FORMAT = 1  # of the resumable state files both trainers write


def training_state(trainer, run: RunState, train, val, **extra) -> dict:
    """What every trainer's resumable state holds (run, config, split, optimiser,
    schedule, random streams) plus the trainer's own ``extra`` entries. ``trainer``
    has ``config``, ``optimizer``, ``scheduler`` and ``rng``; samples have ``name``."""
    import json

    import torch

    return {
        "format": STATE_FORMAT,
        **run.as_state(),
        "config": asdict(trainer.config),
        "train": [s.name for s in train],
        "val": [s.name for s in val],
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "numpy_rng": json.dumps(trainer.rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        **extra,
    }


def read_training_state(
    path: Path, trainer, train, val, keys, resumable, what: str = "a training state"
) -> dict:
    """Read a state written from :func:`training_state` and check it belongs to this
    run (format, ``keys`` present, same config but for ``resumable``, same split);
    one :class:`InputError` otherwise. The trainer's own checks come after."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: cannot read the training state ({first})") from None
    keys = ("format", "config", "train", "val", "epoch", *keys)
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise InputError(f"{path} is not {what} written by napari-samphase")
    if int(state["format"]) > STATE_FORMAT:
        raise InputError(f"{path} was written by a newer napari-samphase; update it")
    check_same_config(state.get("config", {}), asdict(trainer.config), resumable, path)
    if state["train"] != [s.name for s in train] or state["val"] != [s.name for s in val]:
        raise InputError(f"resume: the training images differ from the run saved in {path}")
    return state


def restore_training_state(trainer, state: dict) -> RunState:
    """Put the optimiser, schedule and random streams of ``state`` back into
    ``trainer``; the run as it stood."""
    import torch

    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.rng.bit_generator.state = json.loads(state["numpy_rng"])
    torch.set_rng_state(state["torch_rng"])
    return RunState.from_state(state)
