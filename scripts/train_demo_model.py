"""Train the ``demo-synthetic`` SAM test asset (deterministic, CPU, minutes).

    python scripts/train_demo_model.py [--steps N] [--out PATH]

Prints the SHA-256 to put into ``napari_samphase.core.sam.registry.MODELS``. The model
has only seen synthetic micrographs; it is a test/demo asset, not for real data.
"""

import argparse
import json
from pathlib import Path

from tqdm import tqdm

from napari_samphase.core.sam.weights import ASSETS, sha256sum
from napari_samphase.core.training.demo_model import train_demo_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ASSETS / "demo-synthetic.pth")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(max(1, torch.get_num_threads()))
    with tqdm(total=args.steps, desc="training") as bar:

        def progress(done, total, message):
            bar.n = done
            bar.set_postfix_str(message)
            bar.refresh()

        summary = train_demo_model(
            args.out, steps=args.steps, batch=args.batch, seed=args.seed, progress=progress
        )
    summary["sha256"] = sha256sum(args.out)
    from napari_samphase.core.sam.session import SamSession
    from napari_samphase.core.training.demo_model import evaluate_clicks

    # held-out synthetic images: mean IoU of one click in a particle vs that particle
    session = SamSession.from_name("demo-synthetic", checkpoint=args.out, device="cpu")
    summary["click_iou"] = round(evaluate_clicks(session), 3)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
