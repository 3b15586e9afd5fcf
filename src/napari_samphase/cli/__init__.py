"""``samphase`` command line: a thin shell over napari_samphase.core.

samphase demo --out DIR
samphase segment IMAGE... --out DIR [--model vit_b] [--proposer sam|watershed|...]
                 [--phases K|auto] [--pixel-size 12.5nm] [--include-border] ...
samphase download --model vit_b
samphase evaluate --pred DIR --truth DIR [--semantic|--instance] [--out FILE]
samphase sample OUT.png
samphase train sam IMAGES LABELS --out FT.pth [--base demo-synthetic|vit_b|PATH]
                   [--mode decoder|full] [--epochs N] [--semantic] [--resume] ...
samphase train unet IMAGES LABELS --out UNET.pth [--epochs N] [--depth D] [--width W]
                    [--ignore V] [--class-names a,b,c] [--resume] [--init PREV.pth] ...
samphase predict UNET.pth IMAGE... --out DIR [--pixel-size 12.5nm] [--probabilities] ...
"""

from __future__ import annotations

import sys

from napari_samphase.core.errors import SamphaseError
from napari_samphase.core.progress import Cancelled


def main(argv: list[str] | None = None) -> int:
    from napari_samphase.cli import parser

    args = parser.build_parser().parse_args(argv)
    try:
        from napari_samphase.cli.commands import COMMANDS

        return COMMANDS[args.command](args) or 0
    except (SamphaseError, Cancelled) as exc:
        print(f"samphase: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("samphase: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
