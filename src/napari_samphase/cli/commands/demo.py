"""``samphase demo``: the synthetic sample through the demo model (no download)."""

from __future__ import annotations

STEM = "sample_micrograph"


def cmd_demo(args) -> int:
    """Write the sample as a TIFF that carries its pixel size, segment it as ``segment``
    would (the pixel size read back from the file), score the phases against the
    sample's truth and print the phase table in physical units."""
    from napari_samphase.cli.commands.segment import print_results, run_segment
    from napari_samphase.cli.parser import build_parser
    from napari_samphase.core.image.io import write_tiff
    from napari_samphase.core.image.synthetic import SAMPLE_PIXEL_SIZE, sample_micrograph
    from napari_samphase.core.outputs.report import format_phase_table

    sample = sample_micrograph()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{STEM}.tif"
    write_tiff(path, sample.image, pixel_size=SAMPLE_PIXEL_SIZE)

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
        "--phase-mode",  # the demo shows the SAM path: cluster SAM's masks
        "masks",
        "--points-per-side",
        str(args.points_per_side),
    ]
    ns = build_parser().parse_args((["-q"] if args.quiet else []) + argv)
    print(
        "demo: synthetic micrograph, 'demo-synthetic' SAM (trained on synthetic images "
        "only; use vit_b/vit_l/vit_h for real micrographs)"
    )
    results = run_segment(ns)
    print_results(results, args.out)
    print(f"demo: mIoU {demo_score(args.out):.2f} against the sample's known phases")
    (result,) = results
    print(f"demo: phases of the sample at {result.pixel_size.describe()}:")
    for line in format_phase_table(result.table, result.stats, result.pixel_size):
        print(line)
    return 0


def demo_score(out) -> float:
    """mIoU of the phases written to ``out`` against the sample's truth (clusters
    matched one-to-one to the true phases, the matrix included)."""
    from napari_samphase.core.evaluation.metrics import semantic_metrics
    from napari_samphase.core.image.io import read_labels
    from napari_samphase.core.image.synthetic import sample_micrograph

    phases = read_labels(out / f"{STEM}_phases.tif")
    return semantic_metrics(phases, sample_micrograph().phases)["miou"]
