"""Phase maps on micrographs of several kinds: masks vs pixels vs intensity vs auto.

    python benchmarks/bench_generality.py [--data ../shared/data] [--seeds 4] [--limit 8]

Every set is split in two fixed halves: the TUNING half (generated seeds 0..n-1,
even-indexed real images), on which the defaults of the pixel mode and the auto
criterion were chosen, and the HELD-OUT half (generated seeds 1000.., odd-indexed
real images), never looked at while choosing. K is the number of ground-truth
classes; clusters are matched to classes by the Hungarian method.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from _report import machine, table, timed, write_section
from napari_samphase.core.evaluation.metrics import semantic_metrics
from napari_samphase.core.image.convert import to_gray_float
from napari_samphase.core.image.kinds import KINDS
from napari_samphase.core.phases.modes import PHASE_MODES, choose_mode, map_phases

DEFAULT_DATA = Path(
    os.environ.get("SAMPHASE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
REAL = ("nasa_super_ni", "isbi2012_em", "dsb2018_nuclei")
SPLITS = ("tuning", "held-out")


def pixel_kmeans(image, k):
    """The reference baseline: k-means over the luminance of every pixel."""
    from sklearn.cluster import KMeans

    g = to_gray_float(image)
    return KMeans(k, n_init=3, random_state=0).fit_predict(g.reshape(-1, 1)).reshape(g.shape)


def real_items(data: Path, name: str, split: str, limit: int | None):
    """(image, semantic truth) of one half of a real set: even indices tune."""
    import imageio.v3 as iio

    files = sorted((data / name / "images").glob("*.png"))
    files = [f for i, f in enumerate(files) if i % 2 == SPLITS.index(split)][:limit]
    for f in files:
        truth = iio.imread(data / name / "masks" / f.name).astype(np.int64)
        if name != "nasa_super_ni":  # membrane vs cell, nuclei vs background
            truth = (truth > 0).astype(np.int64)
        yield iio.imread(f), truth


def generated_items(kind: str, split: str, seeds: int):
    offset = 0 if split == "tuning" else 1000
    for s in range(seeds):
        image, truth = KINDS[kind](offset + s)
        yield image, truth.astype(np.int64)


def evaluate(items) -> dict:
    """mIoU per column for every image, and the modes auto picked."""
    cols = {"pixel k-means": [], **{m: [] for m in PHASE_MODES}, "auto": []}
    picks = Counter()
    for image, truth in items:
        k = int(truth.max()) + 1
        maps = {"pixel k-means": pixel_kmeans(image, k)}
        for m in PHASE_MODES:
            maps[m] = map_phases(image, k, mode=m).phase_labels
        # auto = the same runs, chosen the way map_phases(mode="auto") chooses
        best, _ = choose_mode(image, {m: maps[m] for m in PHASE_MODES})
        maps["auto"] = maps[best]
        picks[best] += 1
        for c, p in maps.items():
            cols[c].append(semantic_metrics(p, truth, n_classes=k)["miou"])
    return {"cols": cols, "picks": picks}


def large_image_cost():
    """Time and peak memory of map_phases(auto) on a 2048 x 2048 generated image."""
    from napari_samphase.core.image.synthetic import make_micrograph

    m = make_micrograph((2048, 2048), n_particles=600, n_phases=2, radius=(8, 40), seed=0)
    result, seconds, mib = timed(map_phases, m.image, 3)
    miou = semantic_metrics(result.phase_labels, m.phases)["miou"]
    return seconds, mib, result.mode, miou


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--seeds", type=int, default=4, help="generated images per kind and half")
    parser.add_argument("--limit", type=int, default=8, help="isbi2012_em images per half")
    parser.add_argument("--no-large", action="store_true", help="skip the 2048x2048 run")
    args = parser.parse_args()
    sets = [(k, lambda split, k=k: generated_items(k, split, args.seeds)) for k in KINDS]
    for name in REAL:
        if (args.data / name).is_dir():
            limit = args.limit if name == "isbi2012_em" else None
            sets.append(
                (name, lambda split, n=name, lim=limit: real_items(args.data, n, split, lim))
            )
    header = ["set", "half", "images", "pixel k-means", *PHASE_MODES, "auto", "auto picked"]
    rows, means = [], {s: [] for s in SPLITS}
    t0 = time.perf_counter()
    # One thread: many small k-means on a shared machine (see core/phases/pixels.py).
    with threadpool_limits(1):
        for name, make in sets:
            for split in SPLITS:
                res = evaluate(make(split))
                avg = {c: float(np.mean(v)) for c, v in res["cols"].items()}
                means[split].append(avg)
                picked = ", ".join(f"{m} {n}" for m, n in res["picks"].most_common())
                n_img = len(res["cols"]["auto"])
                rows.append([name, split, n_img, *[f"{v:.3f}" for v in avg.values()], picked])
                print(rows[-1], f"{time.perf_counter() - t0:.0f}s", flush=True)
        for split in SPLITS:
            avg = {c: np.mean([m[c] for m in means[split]]) for c in means[split][0]}
            rows.append(["mean of sets", split, "", *[f"{v:.3f}" for v in avg.values()], ""])
        large = None if args.no_large else large_image_cost()
    text = [
        "## Phase maps on other kinds of micrographs (`benchmarks/bench_generality.py`)",
        "",
        f"Machine: {machine()}; k-means and silhouettes on one thread.",
        "",
        "mIoU after Hungarian matching of clusters to classes, K = number of ground-truth "
        "classes, every image at full resolution (256x256 generated, 512x512 nasa/isbi, "
        "256x256 to 520x696 dsb). Columns: `pixel k-means` is the reference baseline "
        "(k-means over the luminance of every pixel); `masks` is the previous default "
        "(watershed masks + k-means over per-mask default features); `pixels` is k-means "
        "over per-pixel multiscale features; `intensity` is the product's pixel-intensity "
        "mode (k-means fitted on 20,000 sampled pixels); `auto` picks one of the three "
        "per image by the unsupervised criterion of `core/phases/modes.py`.",
        "",
        table(header, rows),
        "",
        "Differences from a reference protocol: the semantic truth of `isbi2012_em` is "
        "membrane vs cell and of `dsb2018_nuclei` nuclei vs background (instance masks "
        "binarised); generated sets are ours (`core/image/kinds.py`, 256x256). "
        f"`isbi2012_em` is subsampled to the first {args.limit} images of each half to keep "
        "the run short. What was tuned, and where: the pixel mode's feature groups "
        "(intensity, texture, coherence, ridge, equal weights), scales, smoothing, and the "
        "auto criterion (best per-group silhouette + 6 x coherence) were chosen on the "
        "TUNING half only (generated seeds 0-3, even-indexed real images, isbi the first "
        "8), looking at all sets together, never at one set alone. The HELD-OUT half "
        "(generated seeds 1000.., odd-indexed real images) played no part in those "
        "choices, with one caveat: a first benchmark run, with an earlier criterion (mean "
        "per-group silhouette + 5 x coherence), reached the held-out rows of particles, "
        "texture and lamellae before it was replaced; the replacement was chosen from the "
        "tuning half (where the same particles failure showed) and that earlier "
        "criterion's held-out rows are not reported here.",
    ]
    if large is not None:
        seconds, mib, mode, miou = large
        text += [
            "",
            f"One 2048x2048 generated particles image, `map_phases(k=3)` (auto, all three "
            f"modes + scoring): {seconds:.1f} s, peak RSS {mib:.0f} MiB; auto picked "
            f"`{mode}` (mIoU {miou:.3f}).",
        ]
    write_section("generality", "\n".join(text))


if __name__ == "__main__":
    main()
