"""``samphase predict UNET.pth IMAGE... --out DIR``: the phase map a trained U-Net gives
each image, with the phase outputs ``segment --phases`` writes (one implementation:
:func:`.segment.write_phase_outputs`).

The options, the checkpoint and the input files are checked before any image is
read; images are then read, predicted and written one at a time, and the files move
into ``--out`` only when every image succeeded.
"""

from __future__ import annotations

from pathlib import Path

from napari_samphase.cli.commands.segment import (
    SUMMARY_NAME,
    ImageOutputs,
    fractions_of,
    input_files,
    phase_summary,
    print_results,
    write_phase_outputs,
)
from napari_samphase.cli.output import commit_output, staged_output
from napari_samphase.cli.parser import parse_pixel_size, parse_stuff
from napari_samphase.cli.progress import TqdmProgress
from napari_samphase.core.errors import InputError


def _stuff(text: str | None, classes: list[int]) -> tuple[int, ...]:
    """``--stuff`` checked against the checkpoint's classes; default the lowest class
    (the one the trainer treats as background)."""
    stuff = parse_stuff(text)
    if stuff is None:
        return (min(classes),)
    unknown = sorted(set(stuff) - set(classes))
    if unknown:
        raise InputError(
            f"--stuff {','.join(map(str, unknown))}: not a class of the checkpoint "
            f"(its classes: {', '.join(map(str, classes))})"
        )
    return stuff


def _provenance(args, predictor, pixel_size, stuff, **extra) -> dict:
    from napari_samphase.core.outputs.provenance import provenance

    meta = predictor.meta
    return provenance(
        model="unet",
        checkpoint_sha256=meta["sha256"],  # of the file, as for SAM checkpoints
        phase_mode="unet",
        seed=None,
        pixel_size=pixel_size,
        checkpoint=str(args.checkpoint),
        weights_sha256=meta.get("weights_sha256"),
        unet=meta.get("unet"),
        classes=predictor.classes.tolist(),
        class_names=predictor.class_names,
        normalisation=predictor.normalisation,
        trained_metrics={k: v for k, v in meta.get("metrics", {}).items() if k != "history"},
        tile=args.tile,
        probabilities=args.probabilities,
        stuff=list(stuff),
        exclude_border=args.exclude_border,
        **extra,
    )


def run_predict(args) -> list[ImageOutputs]:
    """Check the options, the checkpoint and the files, then predict and write one
    image at a time; return each image's summary."""
    from napari_samphase.core.device import resolve_device
    from napari_samphase.core.image import io
    from napari_samphase.core.image.units import read_pixel_size
    from napari_samphase.core.unet.predictor import UNetPredictor

    given_size = parse_pixel_size(args.pixel_size)
    parse_stuff(args.stuff)
    if args.tile < 1:
        raise InputError(f"--tile must be a positive number of pixels, not {args.tile}")
    resolve_device(args.device)
    paths, stems = input_files(args.images, summary=True)
    predictor = UNetPredictor.from_checkpoint(args.checkpoint, device=args.device)
    classes = predictor.classes.tolist()
    stuff = _stuff(args.stuff, classes)
    names = dict(zip(classes, predictor.class_names, strict=True))
    progress = TqdmProgress(disable=args.quiet)

    def tiles(done: int, total: int, message: str = "") -> None:
        progress(done, total, "tiles")  # one bar per image, not one per "tile i/n"

    results = []
    with staged_output(args.out) as tmp:
        tmp = Path(tmp)
        for i, (path, stem) in enumerate(zip(paths, stems, strict=True), 1):
            progress.desc = f"[{i}/{len(paths)}] {stem}: "
            image = io.load_image(path)  # content errors (unreadable, 3D, too big) here
            pixel_size = given_size or read_pixel_size(path)
            labels, probs = predictor.predict(
                image, probabilities=True, tile=args.tile, progress=tiles
            )
            progress.close()
            if args.probabilities:
                io.write_tiff(tmp / f"{stem}_probabilities.tif", probs, pixel_size=pixel_size)
            del probs
            present = [c for c in classes if (labels == c).any()]
            prov = _provenance(
                args, predictor, pixel_size, stuff, image=stem, n_phases=len(present)
            )
            table, stats, fr = write_phase_outputs(
                tmp,
                stem,
                image,
                labels,
                prov,
                stuff=stuff,
                names=names,
                pixel_size=pixel_size,
                exclude_border=args.exclude_border,
                file_name=path.name,
            )
            size_note = f"; {pixel_size.describe()}" if pixel_size.known else ""
            line = f"{stem}: {len(present)} phases by unet (area %, 95% CI: {fr}){size_note}"
            results.append(ImageOutputs(stem, line, pixel_size, table, stats, fractions_of(table)))
            del image, labels  # free this image before the next is read
        if len(results) > 1:
            io.write_table_csv(phase_summary(results), tmp / SUMMARY_NAME)
        commit_output(tmp, args.out)
    return results


def cmd_predict(args) -> int:
    """``samphase predict``: :func:`run_predict`, then one line per image."""
    print_results(run_predict(args), args.out)
    return 0
