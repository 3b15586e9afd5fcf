"""What every trainer here shares: learning-rate schedules, epoch reports, the run's
state between epochs, and writing a state file atomically."""

from __future__ import annotations

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
