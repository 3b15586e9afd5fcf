"""Phases on real data (nasa_super_ni) and the speed of features, k-means and query.

    python benchmarks/bench_phases.py [--data ../shared/data] [--proposer watershed,threshold]

For every image: masks from a proposer, phases with the method's baseline features
(colour at the prompt point), with our default features, and with one example mask
per phase (the largest mask of each ground-truth class: few-click steering).
Clusters are matched to classes by the Hungarian method. Pixel-intensity k-means is
the trivial baseline.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _report import machine, table, write_section
from napari_samphase.core.evaluation.metrics import semantic_metrics
from napari_samphase.core.phases.clustering import find_phases
from napari_samphase.core.phases.query import PhaseQuery
from napari_samphase.core.proposers import make_proposer

DEFAULT_DATA = Path(
    os.environ.get("SAMPHASE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


def pixel_kmeans(image, k):
    from sklearn.cluster import KMeans

    x = image.reshape(-1, 1).astype(np.float32)
    return KMeans(k, n_init=3, random_state=0).fit_predict(x).reshape(image.shape)


def examples_from_truth(labels, truth, background_class=None, n=1, pick="largest"):
    """``n`` example masks per class among those whose majority class is c: the
    largest (the issue's protocol), or the ``n`` around the median size (what a user
    clicking a typical component would pick). Phase ids are c + 1, or the ids after
    the background class when that one is the background."""
    ids = np.unique(labels)
    ids = ids[ids > 0]
    n_cls = int(truth.max()) + 1
    counts = np.zeros((int(labels.max()) + 1, n_cls), np.int64)
    np.add.at(counts, (labels.ravel(), truth.ravel()), 1)
    majority = counts.argmax(1)
    area = counts.sum(1)
    classes = [c for c in range(n_cls) if c != background_class]
    ex = {}
    for phase, c in enumerate(classes, 1):
        cand = ids[majority[ids] == c]
        cand = cand[np.argsort(-area[cand], kind="stable")]  # largest first
        start = 0 if pick == "largest" else max(0, len(cand) // 2 - n // 2)
        for m in cand[start : start + n]:
            ex[int(m)] = phase
    return ex, classes


STEERING = {  # row -> (examples per phase, which masks)
    "default + 1 click/phase (largest mask)": (1, "largest"),
    "default + 1 typical click/phase (median-size mask)": (1, "median"),
    "default + 3 typical clicks/phase": (3, "median"),
}
CEILING = "ceiling: each mask its majority class"


def run_real(data: Path, proposer_name: str, options: dict, limit: int | None):
    folder = data / "nasa_super_ni"
    import imageio.v3 as iio

    files = sorted((folder / "images").glob("*.png"))[:limit]
    proposer = make_proposer(proposer_name, **options)
    per = {
        key: []
        for key in (
            "pixel k-means",
            "prompt colour (method)",
            "default features",
            *STEERING,
            CEILING,
        )
    }
    for f in files:
        img = iio.imread(f)
        truth = iio.imread(folder / "masks" / f.name).astype(np.int64)
        k = int(truth.max()) + 1
        seg = proposer.propose(img)
        bg = "class" if (seg.labels == 0).any() else "ignore"
        points = None
        if "point_row" in seg.table:
            points = np.stack([seg.table["point_row"], seg.table["point_col"]], 1)
        res = {"pixel k-means": pixel_kmeans(img, k)}
        for key, feats in (
            ("prompt colour (method)", "prompt_color"),
            ("default features", "default"),
        ):
            res[key] = find_phases(
                img, seg.labels, k=k, features=feats, background=bg, points=points
            ).phase_labels
        # Few-click steering: background pixels are the class they mostly cover.
        bg_class = None
        if bg == "class":
            bg_class = int(np.bincount(truth[seg.labels == 0], minlength=k).argmax())
        for key, (n, pick) in STEERING.items():
            ex, classes = examples_from_truth(seg.labels, truth, bg_class, n, pick)
            steered = find_phases(
                img, seg.labels, k=k, background=bg, examples=ex, points=points
            ).phase_labels
            # Steered ids are meaningful: map them to classes directly (no Hungarian).
            lut = np.zeros(int(steered.max()) + 2, np.int64)
            lut[0] = bg_class if bg_class is not None else 0
            for phase, c in enumerate(classes, 1):
                if phase < len(lut):
                    lut[phase] = c
            res[key] = lut[steered]
        # No assignment of whole masks (and of the unlabelled pixels) can do better.
        counts = np.zeros((int(seg.labels.max()) + 1, k), np.int64)
        np.add.at(counts, (seg.labels.ravel(), truth.ravel()), 1)
        res[CEILING] = counts.argmax(1)[seg.labels]
        supervised = (*STEERING, CEILING)
        for key, pred in res.items():
            matching = None if key in supervised else "one_to_one"
            m = semantic_metrics(pred, truth, matching=matching, n_classes=k)
            per[key].append((f.stem, m["pixel_accuracy"], m["miou"], m["mean_fraction_error"]))
        print(f.stem, {k_: tuple(np.round(v[-1][1:], 3)) for k_, v in per.items()}, flush=True)
    return per


def speed(n_masks: int = 2000, size: int = 2048):
    """Features + k-means on ~2,000 masks of a 2048x2048 image; same-phase query."""
    from napari_samphase.core.image.synthetic import make_micrograph

    m = make_micrograph((size, size), n_particles=n_masks, radius=(6, 18), gap=2, seed=0)
    find_phases(m.image, m.instances, k=4)  # warm-up: imports, first-call allocations
    t0 = time.perf_counter()
    res = find_phases(m.image, m.instances, k=4)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    q = PhaseQuery.from_result(res)
    t_index = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    pts = rng.integers(0, size, size=(1000, 2))
    t0 = time.perf_counter()
    for r, c in pts:
        q(r, c)
    t_query = (time.perf_counter() - t0) / len(pts)
    return len(res.mask_ids), t_fit, t_index, t_query


def real_data_section(data: Path, proposer: str, limit: int | None) -> str:
    per = run_real(data, proposer, {}, limit)
    rows = []
    for key, vals in per.items():
        arr = np.array([v[1:] for v in vals], float)
        rows.append(
            [key, f"{arr[:, 0].mean():.3f}", f"{arr[:, 1].mean():.3f}", f"{arr[:, 2].mean():.1f}"]
        )
    n = len(next(iter(per.values())))
    out = (
        f"\n### nasa_super_ni ({n} images, 3 classes), proposer `{proposer}`"
        + (" (SAM checkpoint)" if proposer == "sam" else " (no weights)")
        + "\n\n"
        + table(["method", "pixel accuracy", "mIoU", "phase-fraction error (points)"], rows)
    )
    detail = [
        [v[0], *[f"{per[k][i][2]:.3f}" for k in per]]
        for i, v in enumerate(next(iter(per.values())))
    ]
    return out + "\n\nPer image (mIoU):\n\n" + table(["image", *per], detail)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--proposer",
        default="watershed,threshold",
        help="comma-separated; 'sam' uses the cached vit_b checkpoint",
    )
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    sections = [f"## Phases (`benchmarks/bench_phases.py`)\n\nMachine: {machine()}.\n"]
    n, t_fit, t_index, t_query = speed()
    sections.append(
        table(
            [
                "2048x2048 image",
                "masks",
                "features + k-means (s)",
                "query index (s)",
                "same-phase query (ms)",
            ],
            [
                [
                    "synthetic, K=4, default features (warm)",
                    n,
                    f"{t_fit:.2f}",
                    f"{t_index:.2f}",
                    f"{t_query * 1000:.3f}",
                ]
            ],
        )
    )
    if (args.data / "nasa_super_ni").is_dir():
        for name in args.proposer.split(","):
            sections.append(real_data_section(args.data, name, args.limit))
    else:
        sections.append(f"\n(nasa_super_ni not found under {args.data}: skipped)")
    write_section("phases", "\n".join(sections))


if __name__ == "__main__":
    main()
