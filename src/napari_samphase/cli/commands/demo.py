"""``samphase demo``: the synthetic sample through the demo model (no download)."""

from __future__ import annotations


def cmd_demo(args) -> int:
    from napari_samphase.core.image.io import write_png
    from napari_samphase.core.image.synthetic import sample_micrograph

    sample = sample_micrograph()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "sample_micrograph.png"
    write_png(path, sample.image)
    from napari_samphase.cli.commands.segment import cmd_segment
    from napari_samphase.cli.parser import build_parser

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
