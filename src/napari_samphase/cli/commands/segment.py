"""``samphase segment``: masks (and phases) of each image, measured in physical units and
written to a folder."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_samphase.cli.output import as_uint8_labels, commit_output, staged_output
from napari_samphase.cli.parser import parse_k, parse_option, parse_pixel_size, parse_stuff
from napari_samphase.cli.progress import TqdmProgress
from napari_samphase.core.errors import InputError

SUMMARY_NAME = "phase_summary.csv"


@dataclass
class ImageOutputs:
    """What one image gave, for the summary lines and the multi-image summary."""

    stem: str
    line: str
    pixel_size: object  # PixelSize
    table: dict | None = None  # the phase table (report.phase_table)
    stats: dict | None = None  # per-phase statistics (measure.phase_statistics)
    fractions: dict[int, float] = field(default_factory=dict)  # phase -> area %


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


def _run_provenance(args, session, pixel_size, **extra) -> dict:
    """The provenance sidecar's fields (core.outputs.provenance) for one image."""
    from napari_samphase.core.outputs.provenance import provenance

    sam = {}
    if session is not None:
        given = {"pred_iou_thresh": args.pred_iou_thresh, "stability_thresh": args.stability_thresh}
        sam = {
            "model": args.model,
            "checkpoint_sha256": session.checkpoint_sha256,
            # what filtered the masks: the options given, else the model's own
            "thresholds": {
                n: getattr(session.thresholds, n) if v is None else v for n, v in given.items()
            },
            "points_per_side": args.points_per_side,
        }
    else:
        sam["proposer_options"] = dict(map(parse_option, args.proposer_option))
    phases = args.phases is not None
    return provenance(
        proposer=args.proposer,
        features=args.features if phases else None,
        k=parse_k(args.phases),
        seed=args.seed if phases else None,
        phase_mode=args.phase_mode if phases else None,
        pixel_size=pixel_size,
        min_area=args.min_area,
        background=args.background if phases else None,
        stuff=list(parse_stuff(args.stuff)) if phases else None,
        exclude_border=args.exclude_border,
        **sam,
        **extra,
    )


def _write_measures(
    tmp: Path,
    stem: str,
    instances,
    phase_of,
    phase_labels,
    pixel_size,
    exclude_border: bool,
    file_name: str,
    names: dict | None = None,
):
    """Per-particle table, COCO instances (``phase_of``: instance id -> phase) and, with
    phases, the per-phase statistics and size histograms. ``names``: phase -> category
    name (default "background" for 0, "phase K"). Returns the statistics (None without
    phases)."""
    from napari_samphase.core.image.io import write_table_csv
    from napari_samphase.core.measure.particles import particle_table
    from napari_samphase.core.outputs.coco import coco_instances, write_coco

    particles = particle_table(instances, pixel_size, phase_labels)
    write_table_csv(particles, tmp / f"{stem}_particles.csv")
    if phase_labels is not None and names is None:  # every phase of the map is a category
        names = {int(p): "background" if p == 0 else f"phase {p}" for p in np.unique(phase_labels)}
    coco = coco_instances(instances, phase_of, names, file_name=file_name, pixel_size=pixel_size)
    write_coco(coco, tmp / f"{stem}_coco.json")
    if phase_labels is None:
        return None
    from napari_samphase.core.measure.statistics import phase_statistics
    from napari_samphase.core.outputs.histogram import histogram_table, save_size_histogram

    stats = phase_statistics(
        phase_labels,
        instances,
        pixel_size=pixel_size,
        exclude_border=exclude_border,
        particles=particles,  # measured once, above
    )
    write_table_csv(stats, tmp / f"{stem}_phase_stats.csv")
    ecd = particles[f"ecd{pixel_size.suffix(1)}"]
    measured = ~particles["touches_border"] if exclude_border else np.ones(len(ecd), bool)
    sizes = {p: ecd[measured & (particles["phase"] == p)] for p in sorted(set(phase_of.values()))}
    unit = pixel_size.length_unit
    write_table_csv(histogram_table(sizes, unit), tmp / f"{stem}_sizes.csv")
    save_size_histogram(sizes, unit, tmp / f"{stem}_sizes.png")
    return stats


def write_phase_outputs(
    tmp: Path,
    stem: str,
    image,
    phase_labels,
    provenance: dict,
    *,
    masks=None,
    stuff=None,
    names: dict | None = None,
    mask_counts=None,
    pixel_size=None,
    exclude_border: bool = True,
    file_name: str | None = None,
):
    """Write the phase outputs of one image into ``tmp``: the phase map, its overlay,
    table and chart, the panoptic map, the particles, COCO instances, per-phase
    statistics, size histograms and the provenance sidecar. ``segment --phases`` and
    ``predict`` write through this one function.

    Parameters
    ----------
    tmp, stem
        The (staged) output folder and the image's name.
    image
        The image (overlay, mean intensities).
    phase_labels
        H x W phase per pixel (any class values).
    provenance
        The sidecar's fields (:func:`core.outputs.provenance.provenance`).
    masks
        Instance masks whose thing-phase masks are the particles; None: the particles
        are the connected pieces of each thing phase.
    stuff
        Phases that are stuff (the matrix); None: :func:`core.outputs.panoptic.default_stuff`.
    names
        Phase -> name for the panoptic and COCO categories and the summary line
        (default "background" / "phase K").
    mask_counts
        ``(mask ids, phase of each)`` for the phase table's ``count``; default the
        particles (the panoptic map's things).
    pixel_size
        The image's pixel size (unknown: pixels).
    exclude_border
        Leave border particles out of the size statistics.
    file_name
        The input's name, for the COCO and panoptic JSON (default ``STEM.png``).

    Returns
    -------
    tuple
        (phase table, per-phase statistics, the area fractions as text for the
        summary line).
    """
    from napari_samphase.core.image.io import write_png, write_tiff
    from napari_samphase.core.image.units import PixelSize
    from napari_samphase.core.outputs.panoptic import (
        panoptic_files,
        panoptic_from_phases,
        phase_and_instance,
        write_panoptic,
    )
    from napari_samphase.core.outputs.provenance import write_provenance
    from napari_samphase.core.outputs.render import phase_overlay
    from napari_samphase.core.outputs.report import phase_table, save_report

    pixel_size = pixel_size or PixelSize.pixels()
    file_name = file_name or f"{stem}.png"
    write_tiff(tmp / f"{stem}_phases.tif", as_uint8_labels(phase_labels), pixel_size=pixel_size)
    write_png(tmp / f"{stem}_phase_overlay.png", phase_overlay(image, phase_labels))
    # phases and particles in one map: the stuff phases are stuff in every image alike,
    # masks (or connected pieces) of the other phases are things
    panoptic = panoptic_from_phases(phase_labels, masks, stuff=stuff, names=names)
    write_panoptic(panoptic, *panoptic_files(tmp, stem), file_name=file_name)
    # The particles are the panoptic map's things: each lies in one phase, and the
    # stuff phases (the matrix) are not particles.
    _, instances = phase_and_instance(panoptic)
    phase_of = {s["id"]: s["category_id"] for s in panoptic.info if s["isthing"]}
    if mask_counts is None:
        mask_counts = (np.array(list(phase_of), np.int64), np.array(list(phase_of.values())))
    table = phase_table(phase_labels, image, *mask_counts, pixel_size=pixel_size)
    save_report(table, tmp / f"{stem}_phase_table.csv", tmp / f"{stem}_phase_fractions.png")
    stats = _write_measures(
        tmp, stem, instances, phase_of, phase_labels, pixel_size, exclude_border, file_name, names
    )
    write_provenance(provenance, tmp / f"{stem}_provenance.json")
    shown = names or {}
    fr = ", ".join(
        f"{shown.get(int(p), 'bg' if p == 0 else p)}: {f:.1f} [{lo:.1f}, {hi:.1f}]"
        for p, f, lo, hi in zip(
            table["phase"],
            table["area_fraction"],
            table["area_fraction_ci_low"],
            table["area_fraction_ci_high"],
            strict=True,
        )
    )
    return table, stats, fr


def fractions_of(table: dict) -> dict[int, float]:
    """Phase -> area fraction (%) of a phase table, for :func:`phase_summary`."""
    return dict(zip(table["phase"].tolist(), table["area_fraction"].tolist(), strict=True))


def write_results(
    tmp: Path, stem: str, image, seg, k, args, session=None, pixel_size=None, file_name=None
) -> ImageOutputs:
    """Write one image's outputs into ``tmp``; returns its summary. ``file_name``: the
    input's name, for the COCO and panoptic JSON (default ``STEM.png``)."""
    from napari_samphase.core.image.io import write_png, write_tiff
    from napari_samphase.core.image.units import PixelSize
    from napari_samphase.core.outputs.render import mask_overlay

    pixel_size = pixel_size or PixelSize.pixels()
    file_name = file_name or f"{stem}.png"
    write_tiff(tmp / f"{stem}_labels.tif", seg.labels, pixel_size=pixel_size)
    seg.to_csv(tmp / f"{stem}_masks.csv")
    write_png(tmp / f"{stem}_overlay.png", mask_overlay(image, seg.labels))
    size_note = f"; {pixel_size.describe()}" if pixel_size.known else ""
    line = f"{stem}: {seg.n_masks} masks"
    if k is None:
        from napari_samphase.core.outputs.provenance import write_provenance

        _write_measures(
            tmp, stem, seg.labels, None, None, pixel_size, args.exclude_border, file_name
        )
        prov = _run_provenance(args, session, pixel_size, image=stem, n_masks=seg.n_masks)
        write_provenance(prov, tmp / f"{stem}_provenance.json")
        return ImageOutputs(stem, line + size_note, pixel_size)
    from napari_samphase.core.image.io import write_table_csv
    from napari_samphase.core.outputs.report import mask_phase_table
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
    write_table_csv(mask_phase_table(seg.labels, result), tmp / f"{stem}_mask_phases.csv")
    prov = _run_provenance(
        args,
        session,
        pixel_size,
        image=stem,
        n_masks=seg.n_masks,
        n_phases=result.n_phases,
        phase_mode_used=result.mode,
        feature_names=list(getattr(result, "feature_names", []) or []),
    )
    table, stats, fr = write_phase_outputs(
        tmp,
        stem,
        image,
        result.phase_labels,
        prov,
        masks=seg.labels,
        stuff=parse_stuff(args.stuff),
        mask_counts=(result.mask_ids, result.phase_of_mask),
        pixel_size=pixel_size,
        exclude_border=args.exclude_border,
        file_name=file_name,
    )
    line = f"{line}, {result.n_phases} phases by {result.mode} (area %, 95% CI: {fr}){size_note}"
    return ImageOutputs(stem, line, pixel_size, table, stats, fractions_of(table))


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


def phase_summary(results: list[ImageOutputs], confidence: float = 0.95) -> dict:
    """Per phase over several images: the mean area fraction (%) with a Student-t
    interval across the images (each image one field), and each image's fraction.

    Phases are matched by id: the clustering numbers phases by brightness, so similar
    images give the same phase the same id. A phase absent from an image counts 0 %.
    """
    from napari_samphase.core.measure.fractions import fraction_ci_across_fields

    phases = sorted({p for r in results for p in r.fractions})
    per_image = np.array([[r.fractions.get(p, 0.0) for r in results] for p in phases])
    ci = np.array([fraction_ci_across_fields(row / 100.0, confidence) for row in per_image])
    ci = np.clip(100.0 * ci.reshape(-1, 3), 0.0, 100.0)
    table = {
        "phase": np.array(phases, np.int64),
        "n_images": np.full(len(phases), len(results), np.int64),
        "area_fraction_mean": per_image.mean(axis=1) if len(phases) else np.empty(0),
        "area_fraction_ci_low": ci[:, 1],
        "area_fraction_ci_high": ci[:, 2],
    }
    for j, r in enumerate(results):
        table[f"area_fraction_{r.stem}"] = per_image[:, j]
    return table


def input_files(images, summary: bool) -> tuple[list[Path], list[str]]:
    """(paths, stems) of the input images: every file exists and no two names collide
    in the output folder (nor with the multi-image ``summary``); one error otherwise."""
    from napari_samphase.core.image import io

    paths = [io.require_file(p) for p in images]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        raise InputError("two input images share a file name; outputs would collide")
    if summary and len(paths) > 1 and SUMMARY_NAME[: -len(".csv")] in stems:
        raise InputError(f"an image named {SUMMARY_NAME[:-4]} would collide with the summary")
    return paths, stems


def run_segment(args) -> list[ImageOutputs]:
    """Check what is cheap up front (options, pixel size, model, that every file exists,
    unique names), then read, segment and write one image at a time, so only one image
    is in memory; files move into ``--out`` only when every image succeeded."""
    from napari_samphase.core.image import io
    from napari_samphase.core.image.units import read_pixel_size
    from napari_samphase.core.phases.clustering import check_background
    from napari_samphase.core.phases.features import EMBEDDING_NEEDED, needs_embedding
    from napari_samphase.core.phases.modes import check_mode
    from napari_samphase.core.proposers import make_proposer
    from napari_samphase.core.sam.registry import get_spec

    k = parse_k(args.phases)
    parse_stuff(args.stuff)  # a bad value fails before any image is read
    given_size = parse_pixel_size(args.pixel_size)
    if k is not None and needs_embedding(args.features) and args.proposer != "sam":
        raise InputError(EMBEDDING_NEEDED)
    if args.proposer == "sam":
        from napari_samphase.core.device import resolve_device

        get_spec(args.model)
        resolve_device(args.device)
    check_background(args.background)
    check_mode(args.phase_mode)
    paths, stems = input_files(args.images, summary=k is not None)
    proposer = make_proposer(args.proposer, **_proposer_options(args))
    progress = TqdmProgress(disable=args.quiet)
    session = None
    if args.proposer == "sam":
        session = proposer.get_session(progress=progress)  # model errors before any output
    results = []
    with staged_output(args.out) as tmp:
        for i, (path, stem) in enumerate(zip(paths, stems, strict=True), 1):
            progress.desc = f"[{i}/{len(paths)}] {stem}: "
            image = io.load_image(path)  # content errors (unreadable, 3D, too big) here
            pixel_size = given_size or read_pixel_size(path)
            seg = proposer.propose(image, progress=progress)
            progress.close()
            results.append(
                write_results(Path(tmp), stem, image, seg, k, args, session, pixel_size, path.name)
            )
            del image, seg  # free this image before the next is read
        if k is not None and len(results) > 1:
            from napari_samphase.core.image.io import write_table_csv

            write_table_csv(phase_summary(results), Path(tmp) / SUMMARY_NAME)
        commit_output(Path(tmp), args.out)
    return results


def cmd_segment(args) -> int:
    """``samphase segment``: :func:`run_segment`, then one line per image."""
    print_results(run_segment(args), args.out)
    return 0


def print_results(results: list[ImageOutputs], out: Path) -> None:
    """One line per image (stdout); the images without a pixel size named once (stderr)."""
    unknown = [r.stem for r in results if not r.pixel_size.known]
    if unknown:  # said once per run, not once per image
        shown = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        print(
            f"samphase: pixel size unknown for {shown}: lengths and areas in pixels "
            "(give --pixel-size, e.g. --pixel-size 12.5nm)",
            file=sys.stderr,
        )
    for r in results:
        print(r.line)
    if len(results) > 1 and results[0].table is not None:
        print(f"{SUMMARY_NAME}: mean area fraction per phase with its 95% CI across images")
    print(f"results in {out}")
