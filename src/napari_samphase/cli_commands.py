"""What each ``samphase`` subcommand does (kept apart from argument parsing)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .cli import TqdmProgress, as_uint8_labels, commit_output, parse_k, staged_output
from .core.errors import InputError


def _proposer_options(args) -> dict:
    from .cli import parse_option

    if args.proposer != "sam":
        return {"min_area": args.min_area, **dict(map(parse_option, args.proposer_option))}
    if args.proposer_option:
        raise InputError("--proposer-option is for the weight-free proposers")
    return {
        "model": args.model,
        "checkpoint": args.checkpoint,
        "device": args.device,
        "points_per_side": args.points_per_side,
        "pred_iou_thresh": args.pred_iou_thresh,
        "stability_thresh": args.stability_thresh,
        "min_area": args.min_area,
        "fetch": not args.no_download,
    }


def write_results(tmp: Path, stem: str, image, seg, k, args, session=None) -> str:
    """Write one image's outputs into ``tmp``; returns a one-line summary."""
    from .core.io import write_png, write_tiff
    from .core.render import mask_overlay

    write_tiff(tmp / f"{stem}_labels.tif", seg.labels)
    seg.to_csv(tmp / f"{stem}_masks.csv")
    write_png(tmp / f"{stem}_overlay.png", mask_overlay(image, seg.labels))
    line = f"{stem}: {seg.n_masks} masks"
    if k is None:
        return line
    from .core.features import needs_embedding
    from .core.masks import write_table_csv
    from .core.phases import find_phases
    from .core.render import phase_overlay
    from .core.report import phase_table_of, save_report

    points = None
    if "point_row" in seg.table and len(seg.table["id"]):
        points = np.stack([seg.table["point_row"], seg.table["point_col"]], 1)
    emb = None
    if needs_embedding(args.features):
        if session is None or session.embedding is None:
            raise InputError("features with 'embedding' need --proposer sam")
        emb = session.embedding_array()
    result = find_phases(
        image,
        seg.labels,
        k=k,
        features=args.features,
        background=args.background,
        points=points,
        embedding=emb,
        seed=args.seed,
    )
    write_tiff(tmp / f"{stem}_phases.tif", as_uint8_labels(result.phase_labels))
    write_png(tmp / f"{stem}_phase_overlay.png", phase_overlay(image, result.phase_labels))
    table = phase_table_of(result, image)
    save_report(table, tmp / f"{stem}_phase_table.csv", tmp / f"{stem}_phase_fractions.png")
    per_mask = {"id": result.mask_ids, "phase": result.phase_of_mask}
    per_mask.update({n: result.features[:, j] for j, n in enumerate(result.feature_names)})
    write_table_csv(per_mask, tmp / f"{stem}_mask_phases.csv")
    fr = ", ".join(
        f"{'bg' if p == 0 else p}: {f:.1f}%"
        for p, f in zip(table["phase"], table["area_fraction"], strict=True)
    )
    return f"{line}, {result.n_phases} phases ({fr})"


def cmd_segment(args) -> int:
    from .core.features import needs_embedding
    from .core.image import load_image
    from .core.models import get_spec
    from .core.phases import BACKGROUND_MODES
    from .core.proposers import make_proposer

    k = parse_k(args.phases)
    if k is not None and needs_embedding(args.features) and args.proposer != "sam":
        raise InputError("features with 'embedding' need --proposer sam")
    if args.proposer == "sam":
        from .core.device import resolve_device

        get_spec(args.model)
        resolve_device(args.device)
    if args.background not in BACKGROUND_MODES:
        raise InputError(f"--background must be one of {', '.join(BACKGROUND_MODES)}")
    images = [(p.stem, load_image(p)) for p in args.images]  # all inputs checked first
    stems = [s for s, _ in images]
    if len(set(stems)) != len(stems):
        raise InputError("two input images share a file name; outputs would collide")
    proposer = make_proposer(args.proposer, **_proposer_options(args))
    progress = TqdmProgress(disable=args.quiet)
    session = None
    if args.proposer == "sam":
        session = proposer.get_session(progress=progress)  # model errors before any output
    lines = []
    with staged_output(args.out) as tmp:
        for stem, image in images:
            seg = proposer.propose(image, progress=progress)
            progress.close()
            lines.append(write_results(Path(tmp), stem, image, seg, k, args, session))
        commit_output(Path(tmp), args.out)
    for line in lines:
        print(line)
    print(f"results in {args.out}")
    return 0


def cmd_demo(args) -> int:
    from .core.io import write_png
    from .core.synthetic import sample_micrograph

    sample = sample_micrograph()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sample_micrograph.png"
    write_png(path, sample.image)
    from .cli import build_parser

    # The segment command's own parser supplies every other default.
    argv = [
        "segment",
        str(path),
        "--out",
        str(args.out),
        "--model",
        "demo-synthetic",
        "--no-download",
        "--min-area",
        "20",
        "--phases",
        args.phases,
        "--points-per-side",
        str(args.points_per_side),
    ]
    ns = build_parser().parse_args((["-q"] if args.quiet else []) + argv)
    print(
        "demo: synthetic micrograph, 'demo-synthetic' SAM (trained on synthetic images "
        "only; use vit_b/vit_l/vit_h for real micrographs)"
    )
    return cmd_segment(ns)


def cmd_download(args) -> int:
    from .core.models import download, get_spec

    spec = get_spec(args.model)
    path = download(args.model, progress=None)
    print(f"{spec.name}: {path} (SHA-256 verified)")
    return 0


def cmd_sample(args) -> int:
    from .core.io import write_png
    from .core.synthetic import sample_micrograph

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sample_micrograph(seed=args.seed).image)
    print(args.out)
    return 0


def _find_pred(pred_dir: Path, stem: str, kind: str) -> Path | None:
    suffix = "_phases" if kind == "semantic" else "_labels"
    for name in (stem + suffix, stem):
        for ext in (".tif", ".tiff", ".png"):
            p = pred_dir / (name + ext)
            if p.is_file():
                return p
    return None


def cmd_evaluate(args) -> int:
    from .core.io import read_labels
    from .core.masks import write_table_csv
    from .core.metrics import instance_metrics, semantic_metrics

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
        if args.kind == "semantic":
            m = semantic_metrics(pred, truth)
            rows.append(
                {
                    "image": truth_path.stem,
                    "pixel_accuracy": m["pixel_accuracy"],
                    "miou": m["miou"],
                    "mean_dice": m["mean_dice"],
                    "l1": m["l1"],
                    "fraction_error": m["mean_fraction_error"],
                }
            )
        else:
            m = instance_metrics(pred, truth)
            rows.append(
                {
                    "image": truth_path.stem,
                    "n_pred": m["n_pred"],
                    "n_true": m["n_true"],
                    "matched_iou": m["matched_iou"],
                    "precision50": m["precision50"],
                    "recall50": m["recall50"],
                    "f1_50": m["f1_50"],
                    "ap50": m["ap50"],
                    "map": m["map"],
                }
            )
    cols = list(rows[0])
    mean = {"image": "mean"}
    mean.update({c: float(np.mean([r[c] for r in rows])) for c in cols[1:]})
    rows.append(mean)
    table = {c: np.array([r[c] for r in rows]) for c in cols}
    out = args.out or (args.pred / "evaluation.csv")
    write_table_csv(table, out)
    print("  ".join(f"{c:>14}" for c in cols))
    for r in rows:
        print(
            "  ".join(
                f"{r[c]:>14.4f}" if isinstance(r[c], float) else f"{r[c]!s:>14}" for c in cols
            )
        )
    print(f"written {out}", file=sys.stderr)
    return 0


COMMANDS = {
    "segment": cmd_segment,
    "demo": cmd_demo,
    "download": cmd_download,
    "sample": cmd_sample,
    "evaluate": cmd_evaluate,
}
