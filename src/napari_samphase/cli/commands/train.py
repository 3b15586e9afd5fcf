"""``samphase train MODEL``: fine-tune a model on the user's labelled images.

``train sam IMAGES LABELS --out ft.pth`` reads the pairs (every bad file is refused
before the model loads), fine-tunes with :func:`core.training.sam_trainer.train_sam`,
prints one line per epoch and says how to use the checkpoint. Ctrl+C stops at the next
step and keeps the best epoch so far (a second Ctrl+C aborts at once).
"""

from __future__ import annotations

import signal
import sys
import threading
from contextlib import contextmanager
from dataclasses import fields

from napari_samphase.cli.progress import TqdmProgress
from napari_samphase.core.progress import Cancelled, CancelToken


def _fmt(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def epoch_line(report, epochs: int) -> str:
    """One epoch as the command prints it."""
    return (
        f"epoch {report.epoch}/{epochs}: train loss {_fmt(report.train_loss)}, "
        f"val loss {_fmt(report.val_loss)}, val IoU {_fmt(report.val_iou, '.3f')} "
        f"({report.seconds:.1f} s)"
    )


@contextmanager
def ctrl_c_cancels(token: CancelToken):
    """While inside, the first Ctrl+C sets ``token`` (the work stops at its next report,
    keeping what it finished); a second one interrupts at once. Signal handlers can only
    be set from the main thread: elsewhere Ctrl+C keeps its usual meaning."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        print(
            "samphase: stopping at the next step, keeping the best epoch (Ctrl+C again to abort)",
            file=sys.stderr,
        )

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        # None: a handler not set from Python; Python's own is the closest to it
        signal.signal(
            signal.SIGINT, previous if previous is not None else signal.default_int_handler
        )


def _sam_config(args):
    """The run's options from the command line, checked before any file is read."""
    from napari_samphase.core.device import resolve_device
    from napari_samphase.core.training.sam_trainer import SamTrainConfig, check_config

    config = SamTrainConfig(
        **{f.name: getattr(args, f.name) for f in fields(SamTrainConfig) if hasattr(args, f.name)}
    )
    resolve_device(config.device)
    return check_config(config)


def cmd_train_sam(args) -> int:
    """Check the options, read every pair, fine-tune, report the checkpoint."""
    from napari_samphase.core.training.data import pairs_from_folders
    from napari_samphase.core.training.sam_trainer import train_sam

    config = _sam_config(args)
    out = args.out
    pairs = pairs_from_folders(args.images, args.labels, semantic=args.semantic)
    quiet = args.quiet
    bar = TqdmProgress(disable=quiet)
    token = CancelToken()

    def progress(done: int, total: int, message: str = "") -> None:
        token.check()
        # "epoch 2/5 loss 0.31": one bar per epoch, the running loss beside it
        head, sep, loss = message.partition(" loss ")
        bar(done, total, f"{head} (loss {loss})" if sep else message)

    def on_epoch(report) -> None:
        line = epoch_line(report, config.epochs)
        if not quiet:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)  # above the bar, not through it

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with ctrl_c_cancels(token):
            result = train_sam(
                pairs, config, out, progress=progress, on_epoch=on_epoch, resume=args.resume
            )
    except Cancelled:
        raise Cancelled(
            "cancelled before the first epoch finished: no checkpoint written"
        ) from None
    finally:
        bar.close()
    for line in summary(result, config.epochs):
        print(line)
    return 130 if result.stopped == "cancelled" else 0  # 130: the shell's "interrupted"


def summary(result, epochs: int) -> list[str]:
    """The closing lines: where the checkpoint is, which epoch it holds, how to use it."""
    best = next((r for r in result.history if r.epoch == result.best_epoch), None)
    iou = f", val IoU {best.val_iou:.3f}" if best is not None and best.val_iou is not None else ""
    ran = len(result.history)
    why = {
        "epochs": f"{ran} epochs",
        "early_stop": f"stopped early after {ran} of {epochs} epochs (no better val loss)",
        "time": f"stopped after {ran} of {epochs} epochs (--max-minutes)",
        "cancelled": f"cancelled after {ran} of {epochs} epochs: the best epoch was kept",
    }.get(result.stopped, result.stopped)
    return [
        f"checkpoint: {result.checkpoint} (best epoch {result.best_epoch}{iou}; {why})",
        f"use it: samphase segment IMAGE --checkpoint {result.checkpoint} --out DIR",
    ]


TRAINERS = {"sam": cmd_train_sam}


def cmd_train(args) -> int:
    """Dispatch ``samphase train MODEL`` to the model's trainer."""
    return TRAINERS[args.train_model](args)
