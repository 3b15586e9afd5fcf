"""Particle statistics on real data: predicted phases against the ground-truth masks.

    python benchmarks/bench_measure.py [--data ../shared/data] [--split held-out] [--limit N]

On nasa_super_ni (in pixels: its files carry no pixel size) every image is mapped
into K = 3 phases by the best unsupervised pipeline (``map_phases(mode="auto")``,
which picks the masks mode with the ``watershed`` proposer on every held-out image
in bench_generality), clusters are matched to the three classes (gamma matrix,
secondary and tertiary gamma') by the Hungarian method on pixel overlap, and the
particles of the predicted map are measured exactly as those of the ground-truth
masks (:func:`phase_statistics`). Reported per phase: particle counts and the
equivalent-circle diameter (mean, D10/D50/D90), pooled over the images of the
split, and the relative error of the count and of the mean ECD. Split as
bench_generality: even-indexed images tuned the phase defaults, odd-indexed images
(the held-out half, the default here) never did.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _report import PeakRSS, machine, table, write_section
from napari_samphase.core.evaluation.metrics import semantic_metrics
from napari_samphase.core.measure import particle_table, particles_of_phases, phase_statistics
from napari_samphase.core.phases.modes import map_phases

DEFAULT_DATA = Path(
    os.environ.get("SAMPHASE_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)
CLASSES = ("gamma matrix", "secondary gamma'", "tertiary gamma'")
SPLITS = {"tuning": (0,), "held-out": (1,), "all": (0, 1)}  # index parity per split
GOAL = 10.0  # % relative error, secondary gamma' (issue 13)


def majority_ceiling(result, truth):
    """Each mask given its true majority class (pixels in no mask: theirs): the best
    any clustering of these masks can do. A diagnostic that uses the truth."""
    k = len(CLASSES)
    votes = np.zeros((int(result.labels.max()) + 1, k), np.int64)
    np.add.at(votes, (result.labels.ravel(), truth.ravel()), 1)
    return votes.argmax(1)[result.labels]


def components(res, pred, truth):
    return pred, None


def watershed_masks(res, pred, truth):
    return (pred, res.labels) if res.mode == "masks" else None


def ceiling(res, pred, truth):
    return (majority_ceiling(res, truth), None) if res.mode == "masks" else None


# row label -> (phase result, its matched phase map, truth) -> (phase map, particles)
# to measure; particles None = connected components of each phase, as the truth's;
# None instead of the pair where the variant does not apply to the image
VARIANTS = {
    "components of the predicted phase map (as the truth)": components,
    "the watershed masks the phases were clustered from": watershed_masks,
    "ceiling (uses the truth): each watershed mask its true majority class, components": ceiling,
}


def matched(phase_labels, truth):
    """Predicted phase ids -> classes (Hungarian on pixel overlap); an unmatched
    cluster becomes id len(CLASSES): measured, never compared."""
    m = semantic_metrics(phase_labels, truth, n_classes=len(CLASSES))
    lut = np.array([m["matching"].get(i, len(CLASSES)) for i in range(int(phase_labels.max()) + 1)])
    return lut[phase_labels], m["miou"]


def measured(phases, instances):
    """(count of all particles, ECDs of the measured ones, area %) per class."""
    labels = particles_of_phases(phases, instances)
    t = particle_table(labels, phase_labels=phases)
    s = phase_statistics(phases, particles=t)
    out = {}
    for c in range(len(CLASSES)):
        row = np.flatnonzero(s["phase"] == c)
        keep = (t["phase"] == c) & ~t["touches_border"]
        out[c] = (
            int(s["count"][row[0]]) if row.size else 0,
            t["ecd_px"][keep],
            float(s["area_fraction_pct"][row[0]]) if row.size else 0.0,
        )
    return out


def run(data: Path, split: str, limit: int | None):
    import imageio.v3 as iio

    folder = data / "nasa_super_ni"
    files = sorted((folder / "images").glob("*.png"))
    files = [f for i, f in enumerate(files) if i % 2 in SPLITS[split]][:limit]
    per = []  # one dict per image
    for f in files:
        image = iio.imread(f)
        truth = iio.imread(folder / "masks" / f.name).astype(np.int64)
        t0 = time.perf_counter()
        result = map_phases(image, k=len(CLASSES), mode="auto")
        pred, miou = matched(result.phase_labels, truth)
        seconds = time.perf_counter() - t0
        item = {"name": f.stem, "mode": result.mode, "miou": miou, "seconds": seconds}
        item["truth"] = measured(truth, None)
        for key, make in VARIANTS.items():
            made = make(result, pred, truth)
            item[key] = None if made is None else measured(*made)
        per.append(item)
        sec = item[next(iter(VARIANTS))][1]
        print(
            f"{f.stem}: {result.mode}, mIoU {miou:.3f}, secondary count "
            f"{item['truth'][1][0]} -> {sec[0]}, mean ECD {item['truth'][1][1].mean():.1f} -> "
            f"{sec[1].mean() if sec[1].size else float('nan'):.1f} px ({seconds:.1f} s)",
            flush=True,
        )
    return per


def same_particles(a, b) -> bool:
    return all(a[c][0] == b[c][0] and np.array_equal(np.sort(a[c][1]), np.sort(b[c][1])) for c in a)


def rel(pred, true):
    return 100.0 * (pred - true) / true if true else float("nan")


def pooled(per, key, c):
    items = [p for p in per if p[key] is not None]
    count = sum(p[key][c][0] for p in items)
    ecd = np.concatenate([p[key][c][1] for p in items]) if items else np.zeros(0)
    area = np.mean([p[key][c][2] for p in items]) if items else float("nan")
    return count, ecd, area, len(items)


def pct(v):
    return "; ".join(f"{x:.1f}" for x in np.percentile(v, [10, 50, 90])) if v.size else "-"


def fmt_rel(x):
    return "n/a" if x != x else f"{x:+.1f}%"


def summary(per, key):
    rows, verdicts = [], {}
    for c, name in enumerate(CLASSES):
        n_t, e_t, a_t, _ = pooled(per, "truth", c)
        n_p, e_p, a_p, n_img = pooled(per, key, c)
        mean_t = float(e_t.mean()) if e_t.size else float("nan")
        mean_p = float(e_p.mean()) if e_p.size else float("nan")
        r_n, r_e = rel(n_p, n_t), rel(mean_p, mean_t)
        # per image: mean |relative error| (images where the truth has particles)
        img_n, img_e = [], []
        for p in per:
            if p[key] is None or not p["truth"][c][0]:
                continue
            img_n.append(abs(rel(p[key][c][0], p["truth"][c][0])))
            if p[key][c][1].size and p["truth"][c][1].size:
                img_e.append(abs(rel(p[key][c][1].mean(), p["truth"][c][1].mean())))
        img = (np.mean(img_n) if img_n else np.nan, np.mean(img_e) if img_e else np.nan)
        verdicts[name] = (r_n, r_e, *img)
        rows.append(
            [
                name,
                f"{a_t:.1f} / {a_p:.1f}",
                f"{n_t} / {n_p}",
                fmt_rel(r_n),
                f"{mean_t:.1f} / {mean_p:.1f}" if e_t.size else "- (no particles)",
                fmt_rel(r_e),
                f"{pct(e_t)} / {pct(e_p)}",
                f"{img[0]:.0f}% / {img[1]:.0f}%" if img_n and img_e else "-",
            ]
        )
    return rows, verdicts, n_img


HEADER = [
    "phase",
    "area % true / pred (mean)",
    "particles true / pred",
    "count error",
    "mean ECD px true / pred",
    "mean ECD error",
    "ECD D10; D50; D90 px, true / pred",
    "per image mean abs. error count / ECD",
]


def speed():
    """phase_statistics on a 2048x2048 synthetic micrograph, ~2,000 particles."""
    from napari_samphase.core.image.synthetic import make_micrograph

    m = make_micrograph((2048, 2048), n_particles=2000, radius=(6, 18), gap=2, seed=0)
    phase_statistics(m.phases[:256, :256], m.instances[:256, :256])  # warm-up (imports)
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        s = phase_statistics(m.phases, m.instances)
        secs = time.perf_counter() - t0
    return int(s["count"].sum()), secs, mem.delta_mib


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--split", choices=tuple(SPLITS), default="held-out")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    text = [
        "## Particle statistics (`benchmarks/bench_measure.py`)\n",
        f"Machine: {machine()}.\n",
    ]
    n, secs, mib = speed()
    text.append(
        table(
            [
                "2048x2048 synthetic, K=3 phases",
                "particles",
                "phase_statistics (s)",
                "added peak RSS MiB",
            ],
            [["masks as particles, every column", n, f"{secs:.2f}", f"{mib:.0f}"]],
        )
    )
    if not (args.data / "nasa_super_ni").is_dir():
        text.append(f"\n(nasa_super_ni not found under {args.data}: skipped)")
        write_section("measure", "\n".join(text))
        return
    t0 = time.perf_counter()
    per = run(args.data, args.split, args.limit)
    wall = time.perf_counter() - t0
    modes = sorted({p["mode"] for p in per})
    miou = np.mean([p["miou"] for p in per])
    text.append(
        f"\n### nasa_super_ni, {args.split} images ({len(per)}: "
        f"{', '.join(p['name'] for p in per)}), pixels\n\n"
        f'Predicted: `map_phases(image, k=3, mode="auto")` (picked: {", ".join(modes)}; '
        f"mIoU {miou:.3f} after Hungarian matching), {wall:.0f} s in all. Truth: the "
        "dataset's 3-class masks. Both measured by `phase_statistics` with its defaults: "
        "particles touching the image edge are counted but left out of the ECD; ECD "
        "figures pool the measured particles of all images; area % is the mean over "
        "images."
    )
    first = next(iter(VARIANTS))
    for key in VARIANTS:
        same = [p[key] is not None and same_particles(p[key], p[first]) for p in per]
        if key != first and all(same):
            text.append(
                f"\nMeasured: {key}: the same particles as the first table on every image "
                "(each watershed mask is one connected component of its phase)."
            )
            continue
        rows, verdicts, n_img = summary(per, key)
        r_n, r_e, i_n, i_e = verdicts[CLASSES[1]]
        met = abs(r_n) <= GOAL and abs(r_e) <= GOAL
        text.append(f"\nMeasured: {key} ({n_img} images):\n")
        text.append(table(HEADER, rows))
        errors = (
            f"pooled: count {fmt_rel(r_n)}, mean ECD {fmt_rel(r_e)}; per image, mean "
            f"absolute error: count {i_n:.0f}%, mean ECD {i_e:.0f}%"
        )
        if key.startswith("ceiling"):  # not a pipeline: what the masks allow
            text.append(f"\nSecondary gamma' at this ceiling: {errors}.")
        else:
            verdict = "**met**" if met else "**not met**"
            text.append(
                f"\nGoal (secondary gamma' pooled count and mean ECD within {GOAL:.0f}%): "
                f"{verdict} ({errors})."
            )
    key = next(iter(VARIANTS))
    _, e_t, _, _ = pooled(per, "truth", 1)
    _, e_p, _, _ = pooled(per, key, 1)
    if e_t.size and e_p.size:
        d10 = np.percentile(e_t, 10)
        text.append(
            f"\nWhere the secondary gamma' error comes from: {100 * np.mean(e_p < d10):.0f}% "
            f"of the predicted secondary particles are smaller than the truth's D10 "
            f"({d10:.1f} px; 10% of the truth's by definition): small masks (fragments, "
            "tertiary dots) clustered into that phase, and large precipitates whose masks "
            "were split between phases, pull the mean ECD down and the count up."
        )
        ceiling = [k for k in VARIANTS if k.startswith("ceiling")][0]
        if all(p[ceiling] is not None for p in per):
            r_n, r_e, _, _ = summary(per, ceiling)[1][CLASSES[1]]
            allowed = abs(r_n) <= GOAL and abs(r_e) <= GOAL
            text[-1] += (
                f" The masks themselves {'allow' if allowed else 'do not allow'} the goal "
                f"(ceiling: count {fmt_rel(r_n)}, mean ECD {fmt_rel(r_e)})"
                + (": the clustering, not the segmentation, misses it." if allowed else ".")
            )
    detail = [
        [
            p["name"],
            p["mode"],
            f"{p['miou']:.3f}",
            *[
                f"{p['truth'][c][0]} / {p[key][c][0]}; "
                + (
                    f"{p['truth'][c][1].mean():.1f} / {p[key][c][1].mean():.1f}"
                    if p["truth"][c][1].size and p[key][c][1].size
                    else "-"
                )
                for c in (1, 2)
            ],
        ]
        for p in per
    ]
    text.append(
        "\nPer image (components), particles true / pred; mean ECD px true / pred:\n\n"
        + table(["image", "mode", "mIoU", CLASSES[1], CLASSES[2]], detail)
    )
    text.append(
        "\nWhat differs from a reference: there is no published per-particle reference for "
        "these images, so the reference is the dataset's own masks measured with the same "
        "code. Those masks are semantic (3 classes, no instance ids): a truth particle is a "
        "connected (8-neighbour) component of a class, so touching precipitates count as "
        "one in the truth as in the prediction. Sizes are in pixels (the PNG files carry "
        "no pixel size, and their magnifications differ: 15-50 kx where the original "
        "file names say), so pooled ECDs mix scales; truth and prediction pool the same "
        "images, so their comparison stays like with like. The matrix forms no particles "
        "(0 / 0): only its area fraction is compared."
    )
    write_section("measure", "\n".join(text))


if __name__ == "__main__":
    main()
