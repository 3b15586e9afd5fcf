"""``samphase evaluate``: compare result files with ground truth."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError


def _find_pred(pred_dir: Path, stem: str, kind: str) -> Path | None:
    suffix = "_phases" if kind == "semantic" else "_labels"
    for name in (stem + suffix, stem):
        for ext in (".tif", ".tiff", ".png"):
            p = pred_dir / (name + ext)
            if p.is_file():
                return p
    return None


def _semantic_columns(pred, truth) -> dict:
    """One-to-one matching is the headline; the many-to-one mIoU (surplus clusters
    merged into classes using the truth) is reported beside it, labelled."""
    from napari_samphase.core.evaluation.metrics import semantic_metrics

    m = semantic_metrics(pred, truth, matching="one_to_one")
    return {
        "pixel_accuracy": m["pixel_accuracy"],
        "miou": m["miou"],
        "mean_dice": m["mean_dice"],
        "l1": m["l1"],
        "fraction_error": m["mean_fraction_error"],
        "unmatched_clusters": len(m["unmatched"]),
        "miou_many_to_one": semantic_metrics(pred, truth, matching="many_to_one")["miou"],
    }


def _instance_columns(pred, truth) -> dict:
    """COCO AP and the DSB 2018 score are different numbers: both, named."""
    from napari_samphase.core.evaluation.metrics import instance_metrics

    m = instance_metrics(pred, truth)
    names = ("n_pred", "n_true", "matched_iou", "precision50", "recall50", "f1_50")
    return {
        **{n: m[n] for n in names},
        "coco_ap50": m["coco_ap50"],
        "coco_ap": m["coco_ap"],
        "dsb_ap": m["dsb_ap"],
    }


COLUMNS = {"semantic": _semantic_columns, "instance": _instance_columns}


def cmd_evaluate(args) -> int:
    from napari_samphase.core.image.io import read_labels, write_table_csv

    for d in (args.pred, args.truth):
        if not d.is_dir():
            raise InputError(f"{d} is not a folder")
    truths = sorted(
        p for p in args.truth.iterdir() if p.suffix.lower() in (".png", ".tif", ".tiff")
    )
    pairs = [(t, _find_pred(args.pred, t.stem, args.kind)) for t in truths]
    pairs = [(t, p) for t, p in pairs if p is not None]
    if not pairs:
        raise InputError(
            f"no prediction in {args.pred} matches a ground-truth file in "
            f"{args.truth} (expected NAME_phases.tif / NAME_labels.tif / NAME.png)"
        )
    rows = []
    for truth_path, pred_path in pairs:
        truth, pred = read_labels(truth_path), read_labels(pred_path)
        rows.append({"image": truth_path.stem, **COLUMNS[args.kind](pred, truth)})
    cols = list(rows[0])
    mean = {"image": "mean"}
    mean.update({c: float(np.mean([r[c] for r in rows])) for c in cols[1:]})
    rows.append(mean)
    table = {c: np.array([r[c] for r in rows]) for c in cols}
    out = args.out or (args.pred / "evaluation.csv")
    write_table_csv(table, out)
    width = {c: max(14, len(c)) for c in cols}
    print("  ".join(f"{c:>{width[c]}}" for c in cols))
    for r in rows:
        print(
            "  ".join(
                f"{r[c]:>{width[c]}.4f}" if isinstance(r[c], float) else f"{r[c]!s:>{width[c]}}"
                for c in cols
            )
        )
    print(f"written {out}", file=sys.stderr)
    return 0
