"""Fine-tuning SAM on real micrographs: before and after, decoder-only vs full,
learned gray adapter vs channel stacking, and what an epoch costs.

    python benchmarks/bench_finetune.py [--data ../shared/data]
        [--sets nasa_super_ni,dsb2018_nuclei] [--epochs 20] [--max-minutes 10]
        [--base demo-synthetic] [--device cpu]

Split by image: even-numbered files train (the trainer keeps 20% of them for
validation), odd-numbered files test; no test image is seen in training. Every
model is scored on the test images with the same prompts and thresholds:

- click IoU: one positive click at the deepest interior point of every test object
  (at most ``--objects`` per image, objects of at least ``--min-object`` px) vs
  that object; median and mean;
- the method's figures: pixel accuracy and L1 of the foreground map (the union of
  the click masks; L1 over their sigmoid probabilities, max per pixel) vs the true
  foreground (every object);
- segment everything (the ``sam`` proposer with the checkpoint's own thresholds,
  masks cleaned as in the CLI) vs the true instances: COCO AP50;
- phases: those masks clustered into as many phases as the truth has classes
  (``--phase-mode masks``), mIoU after one-to-one matching; beside it the
  weight-free watershed masks in the same run, and pixel-intensity k-means;
- PQ: panoptic quality (COCO counting, pooled over the test images) of those phases
  and masks together: the truth's class 0 (matrix, background) is stuff, its
  instances are things.

nasa_super_ni: instances are the connected components of each gamma' class (the
truth is a class map); dsb2018_nuclei: the given nucleus instances, phases =
nucleus vs background.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from _report import PeakRSS, machine, table, write_section
from napari_samphase.core.evaluation.metrics import instance_metrics, semantic_metrics
from napari_samphase.core.image.convert import to_gray_float
from napari_samphase.core.phases.modes import map_phases
from napari_samphase.core.proposers import make_proposer
from napari_samphase.core.sam.session import SamSession
from napari_samphase.core.training.data import pairs_from_arrays
from napari_samphase.core.training.prompts import deepest_pixel
from napari_samphase.core.training.sam_trainer import SamTrainConfig, train_sam

DEFAULT_DATA = Path(
    os.environ.get("SAMPHASE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
SETS = ("nasa_super_ni", "dsb2018_nuclei")
# name -> SamTrainConfig changes; every run has the same epochs, seed and data
RUNS = {
    "decoder": {"mode": "decoder"},
    "decoder + gray adapter": {"mode": "decoder", "adapter": "gray"},
    "full": {"mode": "full"},
}


def load_set(data: Path, name: str):
    """[(file name, image, instances, classes)] of one set, in file order."""
    import imageio.v3 as iio

    from napari_samphase.core.training.data import semantic_to_instances

    items = []
    for f in sorted((data / name / "images").glob("*.png")):
        image = iio.imread(f)
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[..., :3]
        truth = iio.imread(data / name / "masks" / f.name).astype(np.int64)
        if name == "nasa_super_ni":  # a class map: gamma' particles are its components
            classes, instances = truth, semantic_to_instances(truth)
        else:  # instance labels: phases are nucleus vs background
            classes, instances = (truth > 0).astype(np.int64), truth
        items.append((f.stem, image, instances, classes))
    return items


def click_scores(session: SamSession, items, max_objects: int, min_object: int):
    """One click per object: IoUs, and the foreground map's accuracy and L1."""
    import torch

    ious, dices, acc, l1 = [], [], [], []
    rng = np.random.default_rng(0)
    for _, image, instances, _ in items:
        session.set_image(image)
        ids, area = np.unique(instances[instances > 0], return_counts=True)
        ids = ids[area >= min_object]
        ids = rng.permutation(ids)[:max_objects]
        prob = np.zeros(instances.shape, np.float32)
        for i in ids:
            target = instances == i
            r, c = deepest_pixel(target)  # where the trainer's validation clicks
            result = session.predict([[r, c]])
            inter = (result.mask & target).sum()
            ious.append(inter / max((result.mask | target).sum(), 1))
            dices.append(2 * inter / max(result.mask.sum() + target.sum(), 1))
            # the same output's probabilities, for the method's L1
            coords = session.to_model_coords(np.array([[r, c]]))
            sparse = session.decoder.sparse(
                torch.as_tensor(coords[None], dtype=torch.float32, device=session.device),
                torch.ones((1, 1), dtype=torch.int64, device=session.device),
            )
            _, hyper, keys = session.decoder.transformer(sparse)
            low = session.decoder.upscale(keys, hyper[:, result.index : result.index + 1])
            p = torch.sigmoid(session.upsample(low)[0, 0]).cpu().numpy()
            prob = np.maximum(prob, p)
        fg = np.isin(instances, ids)
        acc.append(float(((prob > 0.5) == fg).mean()))
        l1.append(float(np.abs(prob - fg).mean()))
    return {
        "click IoU median": float(np.median(ious)) if ious else float("nan"),
        "click IoU mean": float(np.mean(ious)) if ious else float("nan"),
        "click Dice mean": float(np.mean(dices)) if dices else float("nan"),
        "pixel acc.": float(np.mean(acc)),
        "L1": float(np.mean(l1)),
        "objects": len(ious),
    }


def pq_counts_of(phases, labels, instances, classes):
    """Panoptic counts of one image: the truth's class 0 (matrix / background) is
    stuff, its instances are things; predicted phases matched one-to-one first."""
    from napari_samphase.core.evaluation.panoptic import panoptic_quality_of_phases
    from napari_samphase.core.outputs.panoptic import panoptic_from_phases

    truth = panoptic_from_phases(classes, instances, stuff=(0,))
    return panoptic_quality_of_phases(phases, labels, truth)["counts"]


def pooled_pq(counts) -> float:
    """COCO's dataset PQ: counts added up over images."""
    return float(sum(counts[1:], counts[0]).summary()["pq"])


def everything_scores(session: SamSession, items, points_per_side: int):
    """Segment everything -> AP50 vs instances, phases mIoU vs classes, and PQ."""
    proposer = make_proposer("sam", points_per_side=points_per_side, session=session)
    ap50, miou, n_masks, few, pq = [], [], [], 0, []
    for _, image, instances, classes in items:
        seg = proposer.propose(image)
        n_masks.append(seg.n_masks)
        ap50.append(instance_metrics(seg.labels, instances)["coco_ap50"])
        k = int(classes.max()) + 1
        if seg.n_masks >= k:
            phases = map_phases(image, k, mode="masks", segmentation=seg).phase_labels
        else:  # too few masks for k phases: one phase, scored as such
            phases = np.zeros_like(classes)
            few += 1
        miou.append(semantic_metrics(phases, classes, n_classes=k)["miou"])
        pq.append(pq_counts_of(phases, seg.labels, instances, classes))
    return {
        "PQ": pooled_pq(pq),
        "AP50": float(np.mean(ap50)),
        "phases mIoU": float(np.mean(miou)),
        "masks/image": float(np.mean(n_masks)),
        "too few masks": few,
    }


def baselines(items):
    from sklearn.cluster import KMeans

    water, pix, pq = [], [], []
    for _, image, instances, classes in items:
        k = int(classes.max()) + 1
        w = map_phases(image, k, mode="masks")  # watershed masks, no weights
        water.append(semantic_metrics(w.phase_labels, classes, n_classes=k)["miou"])
        pq.append(pq_counts_of(w.phase_labels, w.labels, instances, classes))
        g = to_gray_float(image).reshape(-1, 1)
        p = KMeans(k, n_init=3, random_state=0).fit_predict(g).reshape(classes.shape)
        pix.append(semantic_metrics(p, classes, n_classes=k)["miou"])
    return float(np.mean(water)), pooled_pq(pq), float(np.mean(pix))


def run_set(name, items, args, out_dir: Path):
    train = [it for i, it in enumerate(items) if i % 2 == 0]
    test = [it for i, it in enumerate(items) if i % 2 == 1]
    pairs = pairs_from_arrays([(n, im, inst) for n, im, inst, _ in train])
    rows, cost = [], []
    models = {f"{args.base} (before)": None}
    for run, change in RUNS.items():
        config = SamTrainConfig(
            base=args.base,
            epochs=args.epochs,
            max_minutes=args.max_minutes,
            patience=args.patience,
            device=args.device,
            seed=0,
            **change,
        )
        out = out_dir / f"{name}-{run.replace(' ', '_').replace('+', 'plus')}.pth"
        t0 = time.perf_counter()
        with PeakRSS() as mem:
            result = train_sam(pairs, config, out)
        seconds = time.perf_counter() - t0
        per_epoch = [h.seconds for h in result.history]
        cost.append(
            [
                run,
                len(pairs),
                len(result.history),
                result.best_epoch,
                result.stopped,
                float(np.median(per_epoch)),
                seconds / 60,
                mem.mib,
            ]
        )
        models[f"{run} (epoch {result.best_epoch})"] = out
        print(f"{name}: trained {run} in {seconds:.0f} s ({result.stopped})", flush=True)
    for label, ckpt in models.items():
        session = SamSession.from_name(
            args.base if ckpt is None else "vit_b", ckpt, device=args.device
        )
        clicks = click_scores(session, test, args.objects, args.min_object)
        every = everything_scores(session, test, args.points_per_side)
        rows.append(
            [
                label,
                clicks["click IoU median"],
                clicks["click IoU mean"],
                clicks["click Dice mean"],
                clicks["pixel acc."],
                clicks["L1"],
                every["AP50"],
                every["phases mIoU"],
                every["PQ"],
                every["masks/image"],
                every["too few masks"],
                clicks["objects"],
            ]
        )
        print(rows[-1], flush=True)
    water, water_pq, pix = baselines(test)
    return train, test, rows, cost, (water, water_pq), pix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sets", default=",".join(SETS))
    ap.add_argument("--base", default="demo-synthetic")
    ap.add_argument("--epochs", type=int, default=SamTrainConfig.epochs)
    ap.add_argument("--max-minutes", type=float, default=10.0)
    ap.add_argument("--patience", type=int, default=SamTrainConfig.patience)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--objects", type=int, default=30, help="clicked objects per image")
    ap.add_argument("--min-object", type=int, default=30, help="smallest clicked object, px")
    ap.add_argument("--points-per-side", type=int, default=32)
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    sections = [
        "Written by `benchmarks/bench_finetune.py`. " + machine() + f"; device {args.device}. "
        f"Base model `{args.base}` (the project's small demo SAM trained on synthetic "
        "images only: no real SAM checkpoint can be downloaded here, so these are not "
        "the numbers of a fine-tuned ViT-B). Split by image: even-numbered files train "
        "(20% of them validate, for early stopping), odd-numbered files test. "
        f"Every run: {args.epochs} epochs at most, at most {args.max_minutes:g} minutes, "
        f"early stopping after {args.patience} epochs without a lower validation loss, "
        "seed 0, the trainer's defaults otherwise (Adam, lr 1e-4, cosine schedule, "
        "BCE + Dice and IoU-head MSE, point/box prompts with 2 corrective rounds, "
        "flips and 90-degree rotations). Click IoU: one click at the deepest point of "
        "each test object (at most "
        f"{args.objects} per image, >= {args.min_object} px). Pixel acc. / L1: the "
        "method's figures, for the foreground map made of those click masks. AP50: "
        "COCO AP at IoU 0.5 of segment everything "
        f"({args.points_per_side}x{args.points_per_side} grid, the checkpoint's "
        "thresholds, masks cleaned). Phases mIoU: those masks clustered into as many "
        "phases as the truth has classes (`--phase-mode masks`), one-to-one matching. PQ: "
        "panoptic quality of those phases and masks (class 0 stuff, instances things; "
        "COCO counting pooled over the test images; `evaluate --panoptic`)."
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.sets.split(","):
            if not (args.data / name).is_dir():
                sections.append(f"\n({name} not found under {args.data}: skipped)")
                continue
            items = load_set(args.data, name)
            train, test, rows, cost, water, pix = run_set(name, items, args, Path(tmp))
            sections.append(f"\n### {name}: {len(train)} training images, {len(test)} test images")
            sections.append(
                table(
                    [
                        "model",
                        "click IoU median",
                        "click IoU mean",
                        "click Dice mean",
                        "pixel acc.",
                        "L1",
                        "AP50",
                        "phases mIoU",
                        "PQ",
                        "masks/image",
                        "images with < K masks",
                        "objects clicked",
                    ],
                    rows,
                )
            )
            sections.append(
                f"\nSame test images, no weights: watershed masks -> phases mIoU {water[0]:.3f}, "
                f"PQ {water[1]:.3f}; "
                f"pixel-intensity k-means {pix:.3f}.\n\nCost of each training run "
                "(seconds per epoch: median over epochs, validation included; peak "
                "resident memory of the whole process):\n"
            )
            sections.append(
                table(
                    [
                        "run",
                        "training images",
                        "epochs run",
                        "best epoch",
                        "stopped",
                        "s / epoch",
                        "minutes",
                        "peak MiB",
                    ],
                    cost,
                )
            )
    text = "\n".join(sections)
    if args.no_write:
        print(text)
    else:
        write_section("finetune", text)


if __name__ == "__main__":
    main()
