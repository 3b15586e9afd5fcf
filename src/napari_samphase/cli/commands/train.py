"""``samphase train MODEL``: train a model on the user's labelled images.

``train sam IMAGES LABELS --out ft.pth`` fine-tunes SAM on instance masks
(:func:`core.training.sam_trainer.train_sam`); ``train unet IMAGES LABELS --out
unet.pth`` trains a U-Net phase map on class labels or scribbles
(:func:`core.training.unet_trainer.train_unet`). Both read every pair first (every bad
file is refused before the model loads), print one line per epoch and say how to use
the checkpoint. Ctrl+C stops at the next step and keeps the best epoch so far (a second
Ctrl+C aborts at once).
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


def _config(config_class, check, args):
    """The run's options from the command line, checked before any file is read."""
    from napari_samphase.core.device import resolve_device

    config = config_class(
        **{f.name: getattr(args, f.name) for f in fields(config_class) if hasattr(args, f.name)}
    )
    resolve_device(config.device)
    return check(config)


def _sam_config(args):
    from napari_samphase.core.training.sam_trainer import SamTrainConfig, check_config

    return _config(SamTrainConfig, check_config, args)


def _remove_empty(folders) -> None:
    """Remove the folders a failed run made for its checkpoint (deepest first), so bad
    input leaves nothing behind; a folder something else was written to stays."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def run_training(start, epochs: int, quiet: bool, out):
    """``start(progress, on_epoch)`` -> TrainResult, with a tqdm bar showing the running
    loss, one line per epoch above it, and Ctrl+C cancelling at the next step (the
    trainer keeps the best epoch). A run that fails leaves no folder made for ``out``."""
    bar = TqdmProgress(disable=quiet)
    token = CancelToken()

    def progress(done: int, total: int, message: str = "") -> None:
        token.check()
        # "epoch 2/5 loss 0.31", "epoch 2/5 validation 1/2": one bar per epoch, the
        # running loss or the validation step beside it
        for word in ("loss", "validation"):
            head, sep, rest = message.partition(f" {word} ")
            if sep:
                message = f"{head} ({word} {rest})"
                break
        bar(done, total, message)

    def on_epoch(report) -> None:
        line = epoch_line(report, epochs)
        if not quiet:
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)  # above the bar, not through it

    made = [d for d in (out.parent, *out.parent.parents) if not d.exists()]
    out.parent.mkdir(parents=True, exist_ok=True)
    finished = False
    try:
        with ctrl_c_cancels(token):
            result = start(progress, on_epoch)
        finished = True
        return result
    except Cancelled:
        raise Cancelled(
            "cancelled before the first epoch finished: no checkpoint written"
        ) from None
    finally:
        bar.close()
        if not finished:
            _remove_empty(made)


def cmd_train_sam(args) -> int:
    """Check the options, read every pair, fine-tune, report the checkpoint."""
    from napari_samphase.core.training.data import pairs_from_folders
    from napari_samphase.core.training.sam_trainer import train_sam

    config = _sam_config(args)
    pairs = pairs_from_folders(args.images, args.labels, semantic=args.semantic)

    def start(progress, on_epoch):
        return train_sam(
            pairs, config, args.out, progress=progress, on_epoch=on_epoch, resume=args.resume
        )

    result = run_training(start, config.epochs, args.quiet, args.out)
    use = f"samphase segment IMAGE --checkpoint {result.checkpoint} --out DIR"
    for line in summary(result, config.epochs, use):
        print(line)
    return 130 if result.stopped == "cancelled" else 0  # 130: the shell's "interrupted"


def cmd_train_unet(args) -> int:
    """Check the options, read every (image, class labels) pair, train, report."""
    from napari_samphase.cli.parser import parse_class_names
    from napari_samphase.core.errors import InputError
    from napari_samphase.core.training.data import pairs_from_folders
    from napari_samphase.core.training.runs import state_path
    from napari_samphase.core.training.unet_trainer import (
        UNetTrainConfig,
        check_config,
        train_unet,
    )

    config = _config(UNetTrainConfig, check_config, args)
    names = parse_class_names(args.class_names)
    if args.resume and not state_path(args.out).is_file():
        raise InputError(f"resume: {state_path(args.out)} does not exist (nothing to continue)")
    # label values are classes as they are; pixels equal to --ignore are unlabelled
    pairs = pairs_from_folders(args.images, args.labels)

    def start(progress, on_epoch):
        return train_unet(
            pairs,
            config,
            args.out,
            progress=progress,
            on_epoch=on_epoch,
            resume=args.resume,
            init=args.init,
            class_names=names,
        )

    result = run_training(start, config.epochs, args.quiet, args.out)
    use = f"samphase predict {result.checkpoint} IMAGE... --out DIR"
    for line in summary(result, config.epochs, use):
        print(line)
    return 130 if result.stopped == "cancelled" else 0


def summary(result, epochs: int, use: str) -> list[str]:
    """The closing lines: where the checkpoint is, which epoch it holds (with its val
    IoU), why the run stopped, and ``use``: how to use it."""
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
        f"use it: {use}",
    ]


TRAINERS = {"sam": cmd_train_sam, "unet": cmd_train_unet}


def cmd_train(args) -> int:
    """Dispatch ``samphase train MODEL`` to the model's trainer."""
    return TRAINERS[args.train_model](args)
