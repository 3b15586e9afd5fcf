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


PQ_COLUMNS = ("pq", "sq", "rq", "pq_th", "pq_st", "tp", "fp", "fn")


def _panoptic_rows(pred_dir: Path, truth_dir: Path, stuff: tuple[int, ...]) -> list[dict]:
    """One row per image, and "all": PQ from the TP/FP/FN and IoUs added up over every
    image (as COCO does), not the mean of the image rows."""
    from napari_samphase.core.evaluation.panoptic import panoptic_quality_of_phases
    from napari_samphase.core.outputs.panoptic import (
        load_panoptic,
        panoptic_stems,
        read_phase_instance,
    )

    rows, counts, missing = [], [], []
    for stem in panoptic_stems(truth_dir):
        pred = read_phase_instance(pred_dir, stem)
        if pred is None:
            missing.append(stem)
            continue
        # a truth phase map: the --stuff phases are stuff in every image alike
        m = panoptic_quality_of_phases(*pred, load_panoptic(truth_dir, stem, stuff=stuff))
        counts.append(m["counts"])
        rows.append(
            {
                "image": stem,
                **{c: m[c] for c in PQ_COLUMNS},
                "unmatched_phases": len(m["unmatched"]),
            }
        )
    if not rows:
        raise InputError(
            f"no prediction in {pred_dir} matches a ground truth in {truth_dir} (expected "
            "NAME_panoptic.png + .json or NAME_phases.tif in both)"
        )
    if missing:  # said, not hidden: the "all" row covers the images predicted only
        print(
            f"samphase: {len(missing)} ground-truth image(s) have no prediction and are not "
            f"counted: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}",
            file=sys.stderr,
        )
    total = sum(counts[1:], counts[0]).summary()
    unmatched = sum(r["unmatched_phases"] for r in rows)
    rows.append(
        {"image": "all", **{c: total[c] for c in PQ_COLUMNS}, "unmatched_phases": unmatched}
    )
    return rows


def _file_rows(args) -> list[dict]:
    """Semantic or instance rows, and their mean."""
    from napari_samphase.core.image.io import read_labels

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
    mean = {"image": "mean"}
    mean.update({c: float(np.mean([r[c] for r in rows])) for c in list(rows[0])[1:]})
    return [*rows, mean]


def cmd_evaluate(args) -> int:
    from napari_samphase.core.image.io import write_table_csv

    for d in (args.pred, args.truth):
        if not d.is_dir():
            raise InputError(f"{d} is not a folder")
    if args.kind == "panoptic":
        from napari_samphase.cli.parser import parse_stuff

        rows = _panoptic_rows(args.pred, args.truth, parse_stuff(args.stuff))
    else:
        rows = _file_rows(args)
    cols = list(rows[0])
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
