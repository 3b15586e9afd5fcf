"""The ``samphase`` argument parser: every subcommand and its options."""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_samphase.core.errors import SamphaseError


def _add_phase_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--phases",
        default=None,
        metavar="K|auto",
        help="also group masks into K phases (or 'auto'); writes phase outputs",
    )
    p.add_argument(
        "--phase-mode",
        default="auto",
        help="how phases are found: auto (default: the best-scoring of the others), "
        "masks (cluster the masks), pixels (per-pixel texture), intensity (pixel gray "
        "level); see docs/generality.md",
    )
    p.add_argument(
        "--features",
        default="default",
        help="feature set: default, intensity, prompt_color, full, or a+b+c",
    )
    p.add_argument(
        "--background",
        default="class",
        help="pixels in no mask: own class counted in K (default), not counted, "
        "or clustered as masks",
    )
    p.add_argument("--seed", type=int, default=0)
    _add_stuff_arg(p)


def _add_stuff_arg(
    p: argparse.ArgumentParser, default: str | None = "0", shown: str = "0, the background"
) -> None:
    p.add_argument(
        "--stuff",
        default=default,
        metavar="IDS",
        help="panoptic map: the phases that are 'stuff' (one region, no particles), "
        f"comma-separated, or 'none' (default: {shown}/matrix class)",
    )


def parse_stuff(text: str | None) -> tuple[int, ...] | None:
    """'0' / '0,3' / 'none' -> phase ids; None (not given) stays None."""
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    try:
        ids = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise SamphaseError(
            f"--stuff takes phase ids like 0 or 0,3 (or none), not {text!r}"
        ) from None
    if any(i < 0 for i in ids):
        raise SamphaseError("--stuff: phase ids are 0 or more")
    return ids


def _add_proposer_args(p: argparse.ArgumentParser) -> None:
    from napari_samphase.core.device import DEVICE_CHOICES
    from napari_samphase.core.proposers import PROPOSERS
    from napari_samphase.core.sam.registry import MODELS

    # Names are checked by the registries, so a typo gets one clear line, not usage.
    p.add_argument("--proposer", default="sam", help=f"one of {', '.join(PROPOSERS)}")
    p.add_argument("--model", default="vit_b", help=f"one of {', '.join(MODELS)}")
    p.add_argument(
        "--checkpoint", default=None, help="SAM checkpoint file (else cached/downloaded)"
    )
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    p.add_argument("--points-per-side", type=int, default=32)
    p.add_argument(
        "--pred-iou-thresh",
        type=float,
        default=None,
        help="default: the model's (0.88 for the official SAMs)",
    )
    p.add_argument(
        "--stability-thresh",
        type=float,
        default=None,
        help="default: the model's (0.95 for the official SAMs)",
    )
    p.add_argument("--min-area", type=int, default=0)
    p.add_argument(
        "--proposer-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a weight-free proposer's own option, e.g. objects=both or sigma=3 (repeatable)",
    )
    p.add_argument(
        "--no-download",
        action="store_true",
        help="fail instead of downloading a missing checkpoint",
    )


def _add_measure_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--pixel-size",
        default=None,
        metavar="LENGTH",
        help="side of one pixel, e.g. 12.5nm or 0.1um; overrides the size a TIFF carries "
        "(default: read from each file; unknown: lengths and areas in pixels)",
    )
    border = p.add_mutually_exclusive_group()
    border.add_argument(
        "--exclude-border",
        dest="exclude_border",
        action="store_true",
        default=True,
        help="leave particles cut by the image border out of the size statistics "
        "(default; they still count for the area fractions)",
    )
    border.add_argument(
        "--include-border",
        dest="exclude_border",
        action="store_false",
        help="measure particles cut by the image border too",
    )


def parse_pixel_size(text: str | None):
    """``--pixel-size`` -> PixelSize, or None when not given (read from each file)."""
    if text is None:
        return None
    from napari_samphase.core.image.units import PixelSize

    return PixelSize.parse(text, source="--pixel-size")


def parse_option(text: str) -> tuple[str, object]:
    """KEY=VALUE -> (key, value) with VALUE read as a bool, int or float where it is one."""
    from napari_samphase.core.errors import InputError

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise InputError(f"--proposer-option wants KEY=VALUE, got {text!r}")
    low = raw.lower()
    if low in ("true", "false"):
        return key, low == "true"
    for kind in (int, float):
        try:
            return key, kind(raw)
        except ValueError:
            pass
    return key, raw


def parse_k(value: str | None):
    if value is None:
        return None
    if value == "auto":
        return "auto"
    try:
        k = int(value)
    except ValueError:
        raise SamphaseError(f"--phases takes a whole number or 'auto', not {value!r}") from None
    if k < 1:
        raise SamphaseError("--phases must be at least 1")
    return k


# ``samphase train sam`` option -> (SamTrainConfig field, type, help); the defaults are
# read from the dataclass so the command line cannot drift from the Python API.
TRAIN_SAM_OPTIONS = {
    "--base": ("base", str, "model to start from: a registered name or a checkpoint path"),
    "--architecture": (
        "architecture",
        str,
        "what a --base checkpoint without our metadata is (an official or another tool's "
        "state dict); ours name their own",
    ),
    "--mode": ("mode", str, "decoder (encoders frozen, embeddings cached) or full"),
    "--encoder-blocks": (
        "encoder_blocks",
        int,
        "decoder mode: also train the last N image-encoder blocks",
    ),
    "--adapter": ("adapter", str, "none, or gray: a learned 1 -> 3 channel input adapter"),
    "--epochs": ("epochs", int, "passes over the training images"),
    "--max-minutes": (
        "max_minutes",
        float,
        "stop after this long, keeping the best epoch (default: no limit)",
    ),
    "--val-fraction": ("val_fraction", float, "share of the images held out for validation"),
    "--lr": ("lr", float, "learning rate (Adam)"),
    "--patience": ("patience", int, "stop after N epochs without a better val loss (0: never)"),
    "--device": ("device", str, "auto, cpu, cuda or mps"),
    "--seed": ("seed", int, "seed of the split, the prompts and the augmentation"),
}


def _add_train_sam_args(p: argparse.ArgumentParser) -> None:
    from napari_samphase.core.training.sam_trainer import SamTrainConfig

    p.add_argument("images", type=Path, help="folder of images (or one image file)")
    p.add_argument(
        "labels",
        type=Path,
        help="folder of label images matched to the images by file stem (or one file)",
    )
    p.add_argument("--out", required=True, type=Path, help="the fine-tuned checkpoint (.pth)")
    _add_config_options(p, TRAIN_SAM_OPTIONS, SamTrainConfig)
    p.add_argument(
        "--semantic",
        action="store_true",
        help="labels are class maps: each connected region of a class is one object",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run whose checkpoint is --out"
    )


# ``samphase train unet`` option -> (UNetTrainConfig field, type, help), as above.
TRAIN_UNET_OPTIONS = {
    "--epochs": ("epochs", int, "passes over the training images (each --crops-per-image crops)"),
    "--max-minutes": (
        "max_minutes",
        float,
        "stop after this long, keeping the best epoch (default: no limit)",
    ),
    "--depth": ("depth", int, "resolution levels of the U-Net (the original: 5)"),
    "--width": ("width", int, "channels at the first level, doubling per level (original: 64)"),
    "--val-fraction": ("val_fraction", float, "share of the images held out for validation"),
    "--lr": ("lr", float, "learning rate (Adam)"),
    "--batch-size": ("batch_size", int, "crops per step"),
    "--crop": ("crop", int, "side of a training crop, px"),
    "--crops-per-image": ("crops_per_image", int, "crops of each training image per epoch"),
    "--patience": ("patience", int, "stop after N epochs without a better val loss (0: never)"),
    "--border-weight": (
        "border_weight",
        float,
        "w0 of the loss weight on thin gaps between objects (0: off)",
    ),
    "--device": ("device", str, "auto, cpu, cuda or mps"),
    "--seed": ("seed", int, "seed of the split, the crops and the augmentation"),
    "--ignore": (
        "ignore",
        int,
        "label value of unlabelled pixels (scribbles): they do not count (default: none)",
    ),
}
_METAVARS = {int: "N", float: "X", str: "NAME"}


def _add_config_options(p: argparse.ArgumentParser, options: dict, config_class) -> None:
    """One option per ``options`` row, its default read from ``config_class``."""
    from dataclasses import fields

    defaults = {f.name: f.default for f in fields(config_class)}
    for option, (name, kind, text) in options.items():
        default = defaults[name]
        shown = "" if default is None else f" (default: {default})"
        p.add_argument(
            option,
            dest=name,
            type=kind,
            default=default,
            metavar=_METAVARS[kind],
            help=text + shown,
        )


def _add_train_unet_args(p: argparse.ArgumentParser) -> None:
    from napari_samphase.core.training.unet_trainer import UNetTrainConfig

    p.add_argument("images", type=Path, help="folder of images (or one image file)")
    p.add_argument(
        "labels",
        type=Path,
        help="folder of label images matched to the images by file stem (or one file); "
        "each pixel holds its class value (e.g. 0, 1, 2 or 0, 128, 255)",
    )
    p.add_argument("--out", required=True, type=Path, help="the trained U-Net (.pth)")
    _add_config_options(p, TRAIN_UNET_OPTIONS, UNetTrainConfig)
    p.add_argument(
        "--class-names",
        default=None,
        metavar="NAMES",
        help="one name per class in value order (matrix,dark,bright) or VALUE=NAME pairs",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run whose checkpoint is --out"
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        metavar="UNET.pth",
        help="start from this U-Net's weights (same depth and width) instead of random ones",
    )


def parse_class_names(text: str | None) -> list[str] | dict[int, str] | None:
    """``--class-names``: 'a,b,c' -> names in class-value order; '0=a,9=c' -> by value."""
    from napari_samphase.core.errors import InputError

    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    usage = f"--class-names takes names (a,b,c) or VALUE=NAME pairs (0=a,9=c), not {text!r}"
    keyed = ["=" in t for t in items]
    if any(keyed) and not all(keyed):
        raise InputError(usage)
    names: dict[int, str] = {}
    for t in items if all(keyed) else ():
        value, _, name = t.partition("=")
        try:
            names[int(value)] = name.strip()
        except ValueError:
            raise InputError(usage) from None
    if not all(names.values() if names else items):
        raise InputError(f"--class-names: an empty name in {text!r}")
    return names or items


def _add_train_args(sub) -> None:
    """``samphase train MODEL``: one sub-subcommand per trainable model."""
    p = sub.add_parser("train", help="train a model on your own labelled images")
    models = p.add_subparsers(dest="train_model", required=True, metavar="MODEL")
    p = models.add_parser("sam", help="fine-tune SAM on images and their masks")
    _add_train_sam_args(p)
    p = models.add_parser(
        "unet", help="train a U-Net phase map on images and their class labels or scribbles"
    )
    _add_train_unet_args(p)


def _add_predict_args(sub) -> None:
    from napari_samphase.core.device import DEVICE_CHOICES
    from napari_samphase.core.unet.inference import TILE

    p = sub.add_parser("predict", help="phase maps of images from a trained U-Net")
    p.add_argument("checkpoint", type=Path, help="a U-Net from samphase train unet")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    p.add_argument(
        "--tile",
        type=int,
        default=TILE,
        metavar="PX",
        help=f"network input per tile: bounds the memory, not the result (default: {TILE})",
    )
    p.add_argument(
        "--probabilities",
        action="store_true",
        help="also write NAME_probabilities.tif (K x H x W float32, classes in value order)",
    )
    _add_measure_args(p)
    _add_stuff_arg(p, default=None, shown="the lowest class value, the training's background")


def build_parser() -> argparse.ArgumentParser:
    from napari_samphase import __version__

    parser = argparse.ArgumentParser(
        prog="samphase", description="Material phases of micrographs with Segment Anything."
    )
    parser.add_argument("--version", action="version", version=f"samphase {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("segment", help="segment images into masks (and phases)")
    p.add_argument("images", nargs="+", type=Path)
    p.add_argument("--out", required=True, type=Path)
    _add_proposer_args(p)
    _add_phase_args(p)
    _add_measure_args(p)

    p = sub.add_parser("demo", help="segment the synthetic sample micrograph (no download)")
    p.add_argument("--out", type=Path, default=Path("samphase_demo"))
    p.add_argument("--phases", default="4", metavar="K|auto")
    p.add_argument("--points-per-side", type=int, default=24)

    p = sub.add_parser("download", help="download and verify a SAM checkpoint")
    p.add_argument("--model", default="vit_b")

    p = sub.add_parser("sample", help="write the synthetic sample micrograph")
    p.add_argument("out", type=Path)
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("evaluate", help="compare predictions with ground truth")
    p.add_argument("--pred", required=True, type=Path)
    p.add_argument("--truth", required=True, type=Path)
    kind = p.add_mutually_exclusive_group()
    kind.add_argument(
        "--semantic",
        action="store_const",
        dest="kind",
        const="semantic",
        help="phase maps (default): mIoU etc. after one-to-one matching, many-to-one beside it",
    )
    kind.add_argument(
        "--instance",
        action="store_const",
        dest="kind",
        const="instance",
        help="instance labels: precision/recall/F1 at IoU 0.5, COCO AP, DSB 2018 score",
    )
    kind.add_argument(
        "--panoptic",
        action="store_const",
        dest="kind",
        const="panoptic",
        help="phases and particles together: panoptic quality PQ = SQ x RQ (COCO), "
        "per image and over all images; truth: NAME_panoptic.png + .json, or "
        "NAME_phases (+ NAME_labels) with phase 0 as stuff",
    )
    p.add_argument("--out", type=Path, default=None, help="CSV file (default: PRED/evaluation.csv)")
    _add_stuff_arg(p)
    p.set_defaults(kind="semantic")

    _add_train_args(sub)
    _add_predict_args(sub)
    return parser
