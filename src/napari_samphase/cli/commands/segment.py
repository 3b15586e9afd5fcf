"""``samphase segment``: masks (and phases) of each image, written to a folder."""

from __future__ import annotations

from pathlib import Path

from napari_samphase.cli.output import as_uint8_labels, commit_output, staged_output
from napari_samphase.cli.parser import parse_k, parse_option, parse_stuff
from napari_samphase.cli.progress import TqdmProgress
from napari_samphase.core.errors import InputError


def _proposer_options(args) -> dict:

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
    from napari_samphase.core.image.io import write_png, write_tiff
    from napari_samphase.core.outputs.render import mask_overlay

    write_tiff(tmp / f"{stem}_labels.tif", seg.labels)
    seg.to_csv(tmp / f"{stem}_masks.csv")
    write_png(tmp / f"{stem}_overlay.png", mask_overlay(image, seg.labels))
    line = f"{stem}: {seg.n_masks} masks"
    if k is None:
        return line
    from napari_samphase.core.image.io import write_table_csv
    from napari_samphase.core.outputs.panoptic import (
        panoptic_files,
        panoptic_from_phases,
        write_panoptic,
    )
    from napari_samphase.core.outputs.render import phase_overlay
    from napari_samphase.core.outputs.report import mask_phase_table, phase_table_of, save_report
    from napari_samphase.core.phases.modes import map_phases

    # The masks mode clusters the masks made above; "auto" also tries the pixel modes
    # and keeps the map with the best unsupervised score (docs/generality.md).
    result = map_phases(
        image,
        k=k,
        mode=args.phase_mode,
        seed=args.seed,
        **_mode_options(args, seg, session),
    )
    write_tiff(tmp / f"{stem}_phases.tif", as_uint8_labels(result.phase_labels))
    write_png(tmp / f"{stem}_phase_overlay.png", phase_overlay(image, result.phase_labels))
    table = phase_table_of(result, image)
    save_report(table, tmp / f"{stem}_phase_table.csv", tmp / f"{stem}_phase_fractions.png")
    write_table_csv(mask_phase_table(seg.labels, result), tmp / f"{stem}_mask_phases.csv")
    # phases and particles in one map: the --stuff phases (default the background) are
    # stuff in every image alike, masks of the other phases are things
    panoptic = panoptic_from_phases(result.phase_labels, seg.labels, stuff=parse_stuff(args.stuff))
    write_panoptic(panoptic, *panoptic_files(tmp, stem), file_name=f"{stem}.png")
    fr = ", ".join(
        f"{'bg' if p == 0 else p}: {f:.1f}%"
        for p, f in zip(table["phase"], table["area_fraction"], strict=True)
    )
    return f"{line}, {result.n_phases} phases by {result.mode} ({fr})"


def _mode_options(args, seg, session) -> dict:
    """What the chosen phase mode(s) take from the command line."""
    from napari_samphase.core.phases.features import embedding_for

    if args.phase_mode not in ("masks", "auto"):
        return {}
    return {
        "segmentation": seg,
        "embedding": embedding_for(args.features, session),
        "features": args.features,
        "background": args.background,
    }


def cmd_segment(args) -> int:
    """Check what is cheap up front (options, model, that every file exists, unique
    names), then read, segment and write one image at a time, so only one image is in
    memory; files move into ``--out`` only when every image succeeded."""
    from napari_samphase.core.image import io
    from napari_samphase.core.phases.clustering import check_background
    from napari_samphase.core.phases.features import EMBEDDING_NEEDED, needs_embedding
    from napari_samphase.core.phases.modes import check_mode
    from napari_samphase.core.proposers import make_proposer
    from napari_samphase.core.sam.registry import get_spec

    k = parse_k(args.phases)
    parse_stuff(args.stuff)  # a bad value fails before any image is read
    if k is not None and needs_embedding(args.features) and args.proposer != "sam":
        raise InputError(EMBEDDING_NEEDED)
    if args.proposer == "sam":
        from napari_samphase.core.device import resolve_device

        get_spec(args.model)
        resolve_device(args.device)
    check_background(args.background)
    check_mode(args.phase_mode)
    paths = [io.require_file(p) for p in args.images]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise InputError("two input images share a file name; outputs would collide")
    proposer = make_proposer(args.proposer, **_proposer_options(args))
    progress = TqdmProgress(disable=args.quiet)
    session = None
    if args.proposer == "sam":
        session = proposer.get_session(progress=progress)  # model errors before any output
    lines = []
    with staged_output(args.out) as tmp:
        for i, (path, stem) in enumerate(zip(paths, stems, strict=True), 1):
            progress.desc = f"[{i}/{len(paths)}] {stem}: "
            image = io.load_image(path)  # content errors (unreadable, 3D, too big) here
            seg = proposer.propose(image, progress=progress)
            progress.close()
            lines.append(write_results(Path(tmp), stem, image, seg, k, args, session))
            del image, seg  # free this image before the next is read
        commit_output(Path(tmp), args.out)
    for line in lines:
        print(line)
    print(f"results in {args.out}")
    return 0
