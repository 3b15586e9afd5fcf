"""``samphase sample``: write the synthetic sample micrograph."""

from __future__ import annotations


def cmd_sample(args) -> int:
    from napari_samphase.core.image.io import write_png
    from napari_samphase.core.image.synthetic import sample_micrograph

    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_png(args.out, sample_micrograph(seed=args.seed).image)
    print(args.out)
    return 0
