"""Segment everything: stock segment-anything, napari-samphase and micro-sam.

    python benchmarks/bench_sam.py                  # full run, writes docs/benchmarks.md
    python benchmarks/bench_sam.py --quick          # 16x16, small images, 1 repeat, cold

Speed, the same work on every side: a randomly initialised vit_b (fixed seed; the
same weights are handed to micro-sam as a state dict), a 512x512 synthetic
micrograph, thresholds that let every mask pass (predicted IoU -100, stability 0,
box NMS 0.7), 16x16 and 32x32 grids, CPU, 2 torch threads. Random weights predict
IoU ~0 for every mask; SAM's default thresholds would then let a generator that
filters before upscaling (ours) skip work that a real model makes it do, so they
are not used here. Every side: one untimed warm-up, then repeats; the table shows
the repeat with the median whole-process time and its two parts, image embedding
and the rest ("decoder": prompts, upscaling, filters, NMS, output), timed in that
same call so the parts add up.

Agreement and speed with real predictions: the trained ``demo-synthetic`` model with
its registered thresholds, at its native 256x256, at 512x512 and on a portrait
image: the share of the stock generator's masks that ours (and micro-sam's)
recovers with IoU >= 0.9.

micro-sam runs in its own venv (``--microsam-venv``, created with pip when missing)
through ``_microsam_side.py``: images, weights and thresholds go in as files, masks
and timings come back as files.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import torch

from _report import machine, table, write_section
from napari_samphase.core.evaluation.metrics import recovered_fraction
from napari_samphase.core.image.synthetic import make_micrograph
from napari_samphase.core.sam.loading import build_sam, load_sam
from napari_samphase.core.sam.registry import MODELS
from napari_samphase.core.sam.session import SamSession

ROOT = Path(__file__).resolve().parents[1]
SIDE_SCRIPT = Path(__file__).resolve().with_name("_microsam_side.py")
DEMO = "demo-synthetic"
ALL_PASS = (-100.0, 0.0)  # (predicted IoU, stability): every mask passes on every side
BOX_NMS = 0.7
SPEEDUP_GOALS = {16: 3.0, 32: 5.0}  # whole process, ours (default precision) vs stock
RECOVERED_GOAL = 0.95  # share of stock masks recovered with IoU >= 0.9


# -- configurations and results ---------------------------------------------------------
@dataclass
class Config:
    model: str  # "vit_b" (random weights) or DEMO
    image: str  # label, e.g. "512x512 #0"
    pixels: np.ndarray  # H x W x 3 uint8, full 0..255 range
    grid: int
    iou: float
    stab: float
    repeats: int
    warmup: bool  # one untimed run first (timed configurations)
    keep_masks: bool  # masks kept for the agreement table

    @property
    def key(self) -> str:
        return f"{self.model} {self.image} {self.grid}x{self.grid}"


@dataclass
class Result:
    embedding: float = float("nan")  # seconds, of the repeat with the median whole time
    decoder: float = float("nan")
    n_masks: int = 0
    n_empty: int = 0  # masks without a single pixel
    masks: list | None = None
    error: str | None = None
    runs: list = field(default_factory=list)  # (embedding, decoder) of every repeat
    same_input: bool = True  # micro-sam: its normalisation left the image unchanged
    candidates: dict | None = None  # what reached box NMS: see candidate_stats

    @property
    def whole(self) -> float:
        return self.embedding + self.decoder


@dataclass
class Run:
    """One timed whole process of one generator."""

    embedding: float
    decoder: float
    n_masks: int
    n_empty: int = 0
    masks: list | None = None  # only when asked for (agreement)
    candidates: dict | None = None  # what reached box NMS: see candidate_stats


def summarise(runs, last: Run) -> Result:
    """The repeat with the median whole time (lower median for even counts), with its
    own parts, so embedding + decoder = whole in every row; counts from ``last``."""
    emb, dec = sorted(runs, key=sum)[(len(runs) - 1) // 2]
    return Result(
        emb,
        dec,
        last.n_masks,
        last.n_empty,
        last.masks,
        runs=[list(r) for r in runs],
        candidates=last.candidates,
    )


# -- the in-process sides ---------------------------------------------------------------
def run_stock(sam, image, grid, iou, stab, keep, name=None):
    """segment-anything's generator (fp32). Its own ``predictor.set_image`` call is
    timed from inside the same ``generate`` call: that is the embedding part."""
    from segment_anything import SamAutomaticMaskGenerator

    spent, candidates = [], {"empty": [], "box_share": []}
    t0 = time.perf_counter()
    gen = SamAutomaticMaskGenerator(
        sam,
        points_per_side=grid,
        pred_iou_thresh=iou,
        stability_score_thresh=stab,
        box_nms_thresh=BOX_NMS,
    )
    inner = gen.predictor.set_image

    def set_image(*args, **kwargs):
        t = time.perf_counter()
        inner(*args, **kwargs)
        spent.append(time.perf_counter() - t)

    batch = gen._process_batch

    def process_batch(*args, **kwargs):  # what reaches NMS: the filters' survivors
        data = batch(*args, **kwargs)
        h, w = image.shape[:2]
        candidates["empty"] += [bool(sum(r["counts"][1::2]) == 0) for r in data["rles"]]
        x0, y0, x1, y1 = data["boxes"].double().T  # inclusive corners
        candidates["box_share"] += ((x1 - x0 + 1) * (y1 - y0 + 1) / (h * w)).tolist()
        return data

    gen.predictor.set_image = set_image
    gen._process_batch = process_batch
    records = gen.generate(image)
    whole = time.perf_counter() - t0
    masks = [r["segmentation"] for r in records]
    return Run(
        sum(spent),
        whole - sum(spent),
        len(masks),
        _empty(masks),
        masks if keep else None,
        candidates,
    )


def run_ours(sam, image, grid, iou, stab, keep, name, precision):
    """A fresh session (no cached embedding): ``set_image`` is the embedding part
    (it includes the fast decoder's per-image projections), ``segment_everything``
    (with the label image and table it builds) the rest."""
    t0 = time.perf_counter()
    session = SamSession(sam, name, precision=precision)
    t1 = time.perf_counter()
    session.set_image(image)
    t2 = time.perf_counter()
    seg = session.segment_everything(
        points_per_side=grid, pred_iou_thresh=iou, stability_thresh=stab, box_nms_thresh=BOX_NMS
    )
    t3 = time.perf_counter()
    n = len(seg.masks or ())  # every mask kept after NMS, before overlap resolution
    masks = seg.dense_masks() if keep else None
    return Run(t2 - t1, (t1 - t0) + (t3 - t2), n, 0 if masks is None else _empty(masks), masks)


def candidate_stats(c: dict) -> str:
    """The masks that reached box NMS: how many, how many without a pixel, and the
    median share of the image their boxes cover (image-sized masks leave a generator
    that upsamples only inside a mask's box nothing to save)."""
    full = [s for s, e in zip(c["box_share"], c["empty"], strict=True) if not e]
    text = f"{len(c['empty'])} reached NMS"
    if any(c["empty"]):
        text += f" ({sum(c['empty'])} empty)"
    if full:
        text += f", median box {np.median(full):.0%} of the image"
    return text


def _empty(masks) -> int:
    return sum(not np.asarray(m).any() for m in masks)


IN_PROCESS = {  # side -> runner(sam, image, grid, iou, stab, keep, name) -> Run
    "stock": run_stock,
    "ours fp32": partial(run_ours, precision="fp32"),
    "ours auto": partial(run_ours, precision="auto"),
}


def measure(runner, sam, cfg: Config, warmup_grid: int) -> Result:
    """Warm-up (untimed) and ``cfg.repeats`` timed runs; a crash is a result too."""
    try:
        if cfg.warmup and warmup_grid >= 0:
            runner(sam, cfg.pixels, warmup_grid or cfg.grid, cfg.iou, cfg.stab, False, cfg.model)
        runs, run = [], None
        for _ in range(cfg.repeats):
            run = None  # drop the previous repeat's masks before the next one
            run = runner(sam, cfg.pixels, cfg.grid, cfg.iou, cfg.stab, cfg.keep_masks, cfg.model)
            runs.append((run.embedding, run.decoder))
        return summarise(runs, run)
    except Exception as exc:
        traceback.print_exc()
        return Result(error=f"{type(exc).__name__}: {exc}".splitlines()[0][:120])


# -- micro-sam, out of process ----------------------------------------------------------
def microsam_python(venv: Path) -> Path:
    """The venv's python; the venv is created (micro-sam + our torch pair) if missing."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    import torchvision

    print(f"creating the micro-sam venv in {venv} (pip install micro-sam) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pins = [f"torch=={torch.__version__.split('+')[0]}"]
    pins.append(f"torchvision=={torchvision.__version__.split('+')[0]}")
    subprocess.run([str(python), "-m", "pip", "install", "micro-sam", *pins], check=True)
    return python


def weights_checksum(state: dict) -> float:
    return float(sum(v.double().sum() for v in state.values()))


def run_microsam(python, model: dict, cfgs, tiled: bool, warmup_grid, threads, tmp) -> dict:
    """{config key (+ " tiled"): Result} from one micro-sam process for one model."""
    runs = []
    for i, cfg in enumerate(cfgs):
        path = tmp / f"image{i}.npy"
        np.save(path, cfg.pixels)
        base = {
            "image": str(path),
            "pred_iou_thresh": cfg.iou,
            "stability_thresh": cfg.stab,
            "box_nms_thresh": BOX_NMS,
            "repeats": cfg.repeats,
        }
        warm = (warmup_grid or cfg.grid) if cfg.warmup and warmup_grid >= 0 else None
        runs.append(
            {
                **base,
                "name": cfg.key,
                "points_per_side": cfg.grid,
                "warmup_points_per_side": warm,
                "masks_out": str(tmp / f"masks{i}.npz") if cfg.keep_masks else None,
            }
        )
        if tiled:
            tile = [s // 2 for s in cfg.pixels.shape[:2]]  # 2 x 2 tiles
            runs.append(
                {
                    **base,
                    "name": cfg.key + " tiled",
                    "tile_shape": tile,
                    "halo": [t // 4 for t in tile],
                    # the 4 tiles together get as many prompts as the untiled run
                    "points_per_side": cfg.grid // 2,
                    "warmup_points_per_side": warm,
                }
            )
    request, result = tmp / "request.json", tmp / "result.json"
    request.write_text(json.dumps({"threads": threads, "model": model, "runs": runs}))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    subprocess.run([str(python), str(SIDE_SCRIPT), str(request), str(result)], check=True, env=env)
    out = json.loads(result.read_text())
    if "fatal" in out:
        raise RuntimeError(out["fatal"])
    results = {"_meta": out}
    for run, res in zip(runs, out["runs"], strict=True):
        if "error" in res:
            results[run["name"]] = Result(error=res["error"])
            continue
        masks = None
        if run.get("masks_out"):
            with np.load(run["masks_out"]) as f:
                n, h, w = f["shape"]
                bits = np.unpackbits(f["bits"], axis=1, count=h * w)
                masks = list(bits.reshape(n, h, w).astype(bool))
        runs_s = list(zip(res["embedding_s"], res["decoder_s"], strict=True))
        last = Run(0, 0, res["n_masks"], res["n_empty"], masks, res["candidates"])
        r = summarise(runs_s, last)
        r.same_input = res["same_input"]
        results[run["name"]] = r
    return results


# -- images -----------------------------------------------------------------------------
def full_range_rgb(gray: np.ndarray) -> np.ndarray:
    """H x W x 3 uint8 spanning 0..255: micro-sam stretches every image to that range,
    so only such an image reaches all three generators unchanged."""
    g = gray.astype(np.float64)
    g = np.round((g - g.min()) * 255.0 / max(g.max() - g.min(), 1e-9)).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


def micrograph(shape, seed: int) -> np.ndarray:
    if tuple(shape) == (256, 256):  # the plugin's sample image (the demo's native size)
        m = make_micrograph((256, 256), n_particles=20, radius=(8.0, 24.0), seed=seed)
    else:
        m = make_micrograph(tuple(shape), seed=seed)
    return full_range_rgb(m.image)


def click_latency(sam, image, n=20) -> tuple[float, float]:
    """Mean seconds per single click once the embedding exists (stock predictor: best
    of its 3 outputs as numpy; ours: ``SamSession.predict``). One warm-up click each."""
    from segment_anything import SamPredictor

    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 1, size=(n, 2)) * (np.array(image.shape[:2]) - 1)
    pred = SamPredictor(sam)
    pred.set_image(image)
    pred.predict(point_coords=pts[:1, ::-1], point_labels=np.array([1]))
    t0 = time.perf_counter()
    for r, c in pts:
        pred.predict(point_coords=np.array([[c, r]]), point_labels=np.array([1]))
    stock = (time.perf_counter() - t0) / n
    session = SamSession(sam, "vit_b")
    session.set_image(image)
    session.predict([pts[0]])
    t0 = time.perf_counter()
    for p in pts:
        session.predict([p])
    return stock, (time.perf_counter() - t0) / n


# -- tables -----------------------------------------------------------------------------
def fmt_s(v: float) -> str:
    return "-" if v != v else f"{v:.2f}" if v < 10 else f"{v:.1f}"


def speed_rows(cfgs, results, labels):
    rows = []
    for cfg in cfgs:
        stock = results[cfg.key].get("stock")
        for side, label in labels.items():
            r = results[cfg.key].get(side)
            if r is None:
                continue
            head = [cfg.image, f"{cfg.grid}x{cfg.grid}", label]
            if r.error:
                rows.append([*head, f"crashed ({r.error})", "-", "-", "-", "-"])
                continue
            ratio = stock.whole / r.whole if stock and not stock.error else float("nan")
            masks = f"{r.n_masks}" + (f" ({r.n_empty} empty)" if r.n_empty else "")
            if r.candidates:
                masks += "; " + candidate_stats(r.candidates)
            rows.append(
                [
                    *head,
                    masks,
                    fmt_s(r.embedding),
                    fmt_s(r.decoder),
                    fmt_s(r.whole),
                    "-" if ratio != ratio else f"{ratio:.2f}x",
                ]
            )
    return rows


SPEED_HEADER = [
    "image",
    "grid",
    "generator",
    "masks",
    "embedding s",
    "decoder s",
    "whole s",
    "stock whole / whole",
]


def agreement(cfgs, results, sides):
    """Rows of the agreement table and, per side, the recovered shares of every row
    (None: that side or the stock generator crashed)."""
    rows, shares = [], {s: [] for s in sides}
    for cfg in cfgs:
        stock = results[cfg.key]["stock"]
        row = [cfg.image, f"{cfg.grid}x{cfg.grid}"]
        if stock.error:
            rows.append([*row, f"stock crashed ({stock.error})"] + ["-"] * len(sides))
            for s in sides:
                shares[s].append((None, 0))
            continue
        row.append(stock.n_masks)
        for s in sides:
            r = results[cfg.key].get(s)
            if r is None or r.error:
                row.append("crashed" if r is not None else "not run")
                shares[s].append((None, stock.n_masks))
                continue
            frac = recovered_fraction(stock.masks, r.masks)
            shares[s].append((frac, stock.n_masks))
            row.append(f"{r.n_masks} / {frac:.3f}")
        rows.append(row)
    return rows, shares


def recovered_summary(shares):
    """(worst row, pooled share, crashed rows) over one side's agreement rows."""
    ok = [(f, n) for f, n in shares if f is not None and f == f]
    crashed = sum(f is None for f, _ in shares)
    worst = min((f for f, _ in ok), default=float("nan"))
    total = sum(n for _, n in ok)
    pooled = sum(f * n for f, n in ok) / total if total else float("nan")
    return worst, pooled, crashed


def goal_rows(vit_cfgs, demo_shares, results, labels, quick):
    rows = []
    note = " (quick run: not the goal's configuration)" if quick else ""
    by_grid = {c.grid: c for c in vit_cfgs}
    for grid, need in SPEEDUP_GOALS.items():
        goal = f"vit_b, every mask passing, {grid}x{grid}: ours >= {need:g}x stock (whole)"
        cfg = by_grid.get(grid)
        res = results.get(cfg.key, {}) if cfg else {}
        stock, ours = res.get("stock"), res.get("ours auto")
        if not cfg or not stock or not ours or stock.error or ours.error:
            crashed = any(r is not None and r.error for r in (stock, ours))
            rows.append([goal, "crashed" if crashed else "-", "not measured"])
            continue
        ratio = stock.whole / ours.whole
        rows.append(
            [
                goal,
                f"{ratio:.2f}x ({ours.whole:.1f} s vs {stock.whole:.1f} s, {cfg.image}){note}",
                "met" if ratio >= need else "not met",
            ]
        )
    for grid, cfg in by_grid.items():
        goal = f"vit_b, every mask passing, {grid}x{grid}: ours faster than micro-sam"
        ours, ms = results[cfg.key].get("ours auto"), results[cfg.key].get("micro-sam")
        if not ours or not ms or ours.error or ms.error:
            rows.append([goal, "crashed" if ours and ours.error else "-", "not measured"])
            continue
        rows.append(
            [
                goal,
                f"{ms.whole / ours.whole:.2f}x ({ours.whole:.1f} s vs {ms.whole:.1f} s){note}",
                "met" if ours.whole < ms.whole else "not met",
            ]
        )
    for side in ("ours auto", "ours fp32"):
        worst, pooled, crashed = recovered_summary(demo_shares[side])
        measured = (
            f"worst {worst:.3f}, pooled {pooled:.3f} over {len(demo_shares[side])} "
            "configurations (demo-synthetic)"
        )
        if crashed:
            measured += f"; {crashed} crashed"
        met = worst >= RECOVERED_GOAL and not crashed
        goal = f"{side}: >= {RECOVERED_GOAL:.0%} of stock masks recovered (IoU >= 0.9)"
        rows.append([goal, measured + note, "met" if met else "not met"])
    return rows


# -- main -------------------------------------------------------------------------------
def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="16x16, small images, 1 repeat, cold")
    p.add_argument("--repeats", type=int, help="timed repeats (default 3; --quick: 1)")
    p.add_argument(
        "--warmup-grid",
        type=int,
        help="grid of the untimed warm-up run (default 8: the same tensor shapes as the "
        "timed runs; 0: the timed grid; -1: no warm-up, the --quick default)",
    )
    p.add_argument("--microsam-venv", type=Path, default=ROOT / "bench_out" / "microsam-venv")
    p.add_argument("--no-microsam", action="store_true", help="skip micro-sam")
    p.add_argument(
        "--tiled",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time micro-sam's tiled embedding and generator (vit_b; default: yes)",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument(
        "--grids",
        default=None,
        help="comma-separated grid sizes (default 16,32; --quick: 16); a run that leaves "
        "out 32 says so in the goals table",
    )
    p.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        help="write docs/benchmarks.md (default: yes, except with --quick)",
    )
    p.add_argument("--json", type=Path, help="raw results (default bench_out/bench_sam*.json)")
    args = p.parse_args()
    args.repeats = args.repeats or (1 if args.quick else 3)
    if args.warmup_grid is None:
        args.warmup_grid = -1 if args.quick else 8
    if args.write is None:
        args.write = not args.quick
    suffix = "_quick" if args.quick else ""
    args.json = args.json or ROOT / "bench_out" / f"bench_sam{suffix}.json"
    return args


def configs(args):
    """(vit_b speed configs, demo configs timed, demo configs for agreement only)."""
    grids = (16,) if args.quick else (16, 32)
    if args.grids:
        grids = tuple(int(g) for g in args.grids.split(","))
    reps, warm = args.repeats, True
    vit_size = (256, 256) if args.quick else (512, 512)
    vit_img = micrograph(vit_size, 0)
    label = f"{vit_size[0]}x{vit_size[1]} #0"
    vit = [Config("vit_b", label, vit_img, g, *ALL_PASS, reps, warm, False) for g in grids]
    spec = MODELS[DEMO]
    th = (spec.pred_iou_thresh, spec.stability_thresh)
    sizes = [(256, 256), (256, 160)] if args.quick else [(256, 256), (512, 512), (512, 320)]
    seeds = (0,) if args.quick else (0, 1, 2)
    timed_sizes = sizes if args.quick else sizes[:2]
    demo = []
    for size in sizes:
        for seed in seeds:
            timed = seed == 0 and size in timed_sizes
            img = micrograph(size, seed)
            for g in grids:
                label = f"{size[0]}x{size[1]} #{seed}"
                demo.append(Config(DEMO, label, img, g, *th, reps if timed else 1, timed, True))
    return vit, demo


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    vit_cfgs, demo_cfgs = configs(args)
    results: dict[str, dict[str, Result]] = {c.key: {} for c in vit_cfgs + demo_cfgs}
    meta: dict = {}

    torch.manual_seed(0)
    vit = build_sam("vit_b").eval()
    demo = load_sam(DEMO, device="cpu")
    auto_bf16 = SamSession(vit, "vit_b", precision="auto").encoder_bf16
    sides = list(IN_PROCESS) if auto_bf16 else ["stock", "ours fp32"]
    labels = {
        "stock": "stock `SamAutomaticMaskGenerator` (fp32)",
        "ours fp32": "ours, fp32",
        "ours auto": "ours, auto = bf16 encoder"
        if auto_bf16
        else "ours, auto = fp32 (no native bf16 here; the fp32 run)",
        "micro-sam": "micro-sam `AutomaticMaskGenerator` (fp32)",
        "micro-sam tiled": "micro-sam tiled embedding + `TiledAutomaticMaskGenerator`",
    }

    for model, cfgs in ((vit, vit_cfgs), (demo, demo_cfgs)):
        for cfg in cfgs:
            for side in sides:
                r = measure(IN_PROCESS[side], model, cfg, args.warmup_grid)
                results[cfg.key][side] = r
                print(f"[{cfg.key}] {side}: " + (r.error or _line(r)), flush=True)
            if not auto_bf16:  # "auto" runs the fp32 encoder here: the same run
                results[cfg.key]["ours auto"] = results[cfg.key]["ours fp32"]

    if not args.no_microsam:
        jobs = [("vit_b", vit, vit_cfgs, args.tiled), (DEMO, demo, demo_cfgs, False)]
        microsam_all(args, jobs, results, meta)

    click = click_latency(vit, vit_cfgs[0].pixels)
    elapsed = time.perf_counter() - t_start
    report(args, vit_cfgs, demo_cfgs, results, labels, auto_bf16, meta, click, elapsed)


def microsam_all(args, jobs, results: dict, meta: dict) -> None:
    """micro-sam's results into ``results``, one process per model; what failed goes to
    ``meta["microsam_error"]`` (the tables then say "not measured")."""
    errors = meta.setdefault("microsam_error", {})
    try:
        python = microsam_python(args.microsam_venv.resolve())
    except Exception as exc:
        traceback.print_exc()
        errors["venv"] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        return
    for name, sam, cfgs, tiled in jobs:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            state = tmp / "weights.pth"
            torch.save(sam.state_dict(), state)
            if name == "vit_b":  # micro-sam's own loader for an official architecture
                spec = {"model_type": name, "checkpoint": str(state)}
            else:  # built from the project's registry (micro-sam cannot build it)
                spec = {"architecture": name, "state_dict": str(state), "src": str(ROOT / "src")}
            try:
                got = run_microsam(python, spec, cfgs, tiled, args.warmup_grid, args.threads, tmp)
            except Exception as exc:
                traceback.print_exc()
                errors[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
                continue
        m = got.pop("_meta")
        meta["micro_sam"], meta["microsam_torch"] = m["micro_sam"], m["torch"]
        ours = weights_checksum(sam.state_dict())
        if abs(m["weights_checksum"] - ours) > 1e-9 * max(abs(ours), 1.0):
            errors[name] = "micro-sam did not load the same weights"
            continue
        for cfg in cfgs:
            for suffix, side in (("", "micro-sam"), (" tiled", "micro-sam tiled")):
                if cfg.key + suffix in got:
                    results[cfg.key][side] = got[cfg.key + suffix]
        meta["same_input"] = meta.get("same_input", True) and all(
            r.same_input for r in got.values()
        )
    if not errors:
        del meta["microsam_error"]


def _line(r: Result) -> str:
    return (
        f"whole {r.whole:.2f} s (embedding {r.embedding:.2f} + decoder {r.decoder:.2f}), "
        f"{r.n_masks} masks"
    )


def _raw(r: Result) -> dict:
    if r.error:
        return {"error": r.error}
    raw = {"runs": r.runs, "n_masks": r.n_masks, "n_empty": r.n_empty}
    if r.candidates:
        raw["reached_nms"] = candidate_stats(r.candidates)
    return raw


def cpu_bf16_flags() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return "unknown CPU flags"
    found = sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16")})
    return ", ".join(found) if found else "no avx512_bf16/amx_bf16"


def report(args, vit_cfgs, demo_cfgs, results, labels, auto_bf16, meta, click, elapsed):
    quick = args.quick
    vit_sides = ["stock", "ours fp32", "ours auto", "micro-sam", "micro-sam tiled"]
    demo_sides = ["stock", "ours fp32", "ours auto", "micro-sam"]
    speed_labels = {s: labels[s] for s in vit_sides}
    if not auto_bf16:  # one row for the one fp32 run
        speed_labels.pop("ours auto")
        speed_labels["ours fp32"] = "ours, fp32 (= auto here: no native bf16)"
    vit_table = table(SPEED_HEADER, speed_rows(vit_cfgs, results, speed_labels))
    timed_demo = [c for c in demo_cfgs if c.warmup]
    demo_labels = {s: speed_labels[s] for s in demo_sides if s in speed_labels}
    demo_table = table(SPEED_HEADER, speed_rows(timed_demo, results, demo_labels))
    agree_sides = ["ours fp32", "ours auto", "micro-sam"]
    rows, shares = agreement(demo_cfgs, results, agree_sides)
    agree_table = table(
        [
            "image",
            "grid",
            "stock masks",
            "ours fp32: masks / recovered",
            "ours auto: masks / recovered" + ("" if auto_bf16 else " (= fp32 here)"),
            "micro-sam: masks / recovered",
        ],
        rows,
    )
    goals = table(
        ["goal", "measured", "status"],
        goal_rows(vit_cfgs, shares, results, labels, quick),
    )
    stock_click, ours_click = click
    click_table = table(
        ["one click after the embedding (vit_b)", "stock `SamPredictor`", "ours"],
        [[vit_cfgs[0].image, f"{stock_click * 1000:.0f} ms", f"{ours_click * 1000:.0f} ms"]],
    )
    ms = meta.get("micro_sam")
    if meta.get("microsam_error"):
        failed = "; ".join(f"{k}: {v}" for k, v in meta["microsam_error"].items())
        ms_line = f"micro-sam {ms or ''}: not measured where it failed ({failed})."
    elif ms:
        same = (
            "the same image pixels (checked: its 0..255 normalisation leaves them unchanged)"
            if meta.get("same_input")
            else "**different** image pixels (its normalisation changed the image)"
        )
        ms_line = (
            f"micro-sam {ms} in its own venv (torch {meta['microsam_torch']}, "
            f"{args.threads} threads): the same weights (checked) and {same}."
        )
    else:
        ms_line = "micro-sam: not measured (--no-microsam)."
    spec = MODELS[DEMO]
    g = vit_cfgs[-1].grid
    vit_img = vit_cfgs[0].image.split()[0]
    wg = args.warmup_grid
    warm = (
        "no warm-up (cold)"
        if wg < 0
        else "one untimed warm-up run per generator and configuration with "
        + ("the timed grid" if wg == 0 else f"a {wg}x{wg} grid (per tile when tiled)")
        + (": one full batch of 64 prompts, the tensor shapes of the timed runs" if wg == 8 else "")
    )
    command = shlex.join(["python", "benchmarks/bench_sam.py", *sys.argv[1:]])
    head = "**Quick run (`--quick`): small images, 1 repeat, no warm-up, noisy.**\n\n"
    tiled = (
        f"""
The tiled micro-sam row does different work: `precompute_image_embeddings` with
`tile_shape` = half the image and `halo` = a quarter tile cuts the image into 2x2
tiles, resizes each tile with its halo to 1024 and encodes it (4 encoder passes
instead of 1); `TiledAutomaticMaskGenerator` gets a {g // 2}x{g // 2} grid per tile for
the {g}x{g} row (per tile, so the 4 tiles hold as many prompts as the untiled run),
drops masks touching an inner tile edge and merges the tiles by box NMS.
"""
        if any("micro-sam tiled" in results[c.key] for c in vit_cfgs)
        else ""
    )
    md = f"""## SAM segment-everything (`benchmarks/bench_sam.py`)

{head if quick else ""}Machine: {machine()}; {cpu_bf16_flags()}, so
`precision="auto"` runs the image encoder in **{"bf16" if auto_bf16 else "fp32"}** here.
{ms_line}

Command: `{command}` ({elapsed / 60:.0f} min). Times: the repeat with the median
whole-process time out of {args.repeats}, {warm}. The embedding and decoder parts
are timed inside that same call, so whole = embedding + decoder; "decoder" is
everything after the embedding: the prompt grid through the mask decoder,
upscaling, filters, box NMS and the output (ours also builds its label image and
table). Model loading is not timed.

### Goals

Computed from the tables below; "ours" is the default `precision="auto"`.

{goals}

### Speed: the same work on every side

Randomly initialised `vit_b` (`torch.manual_seed(0)`; micro-sam loads the same
weights from a state dict), one {vit_img} synthetic micrograph, thresholds that
pass every mask (predicted IoU -100, stability 0; box NMS {BOX_NMS}), so no
generator can skip the per-mask work a real model causes. With SAM's default
0.88, random weights (predicted IoU ~0) let our generator, which filters before
upscaling, drop every mask early while the stock one upsamples them all: that
comparison measures nothing useful. Random weights also make near-identical
masks, so box NMS keeps very few: "reached NMS" counts the masks each upsampled
to the image and scored before it (stock and micro-sam report them; ours does
not, and skips masks without a pixel). Their boxes cover most of the image here,
while a trained model's masks are mostly small: ours upsamples each mask only
inside its box, so this test gives that saving no room.

{vit_table}
{tiled}
### demo-synthetic with its registered thresholds

The trained `demo-synthetic` model, predicted IoU {spec.pred_iou_thresh}, stability
{spec.stability_thresh}, box NMS {BOX_NMS} on every side, so each generator's own
early filtering counts here (micro-sam's `initialize` computes stability scores,
boxes and RLE for every mask before `generate` filters them).

{demo_table}

### Agreement with the stock generator

Share of the stock generator's masks that each generator returns with IoU >= 0.9
(`recovered_fraction`): demo-synthetic with its thresholds on synthetic
micrographs (#seed), portrait images included; ours as it returns them before its
overlap resolution. "crashed": the generator raised on that image.

{agree_table}

### What still differs

- Same on all sides: weights, pixels, SAM's point grid, single-point prompts
  with 3 outputs each, stability offset 1.0, no crop layers, no min-region
  cleanup (`min_mask_region_area=0`), box NMS {BOX_NMS}, fp32 (except ours `auto`
  with a bf16 encoder). Images are stretched to the full 0..255 range first:
  micro-sam min-max normalises every image per channel, the others do not, so only
  such images reach all three unchanged.
- Stock: prompts in batches of 64, every mask upsampled to the image, filters,
  boxes (inclusive corner pixels), RLE, NMS, RLE decoded into masks.
- micro-sam: the same steps in batches of 64, split between `initialize` (all
  masks upsampled, scored, RLE-encoded, whatever the thresholds) and `generate`
  (filters, NMS, `output_mode="binary_mask"`: a list of masks like stock; its
  `with_background` applies only to its label-image output). Its embedding is
  `precompute_image_embeddings(..., ndim=2)`: without `ndim=2` an H x W x 3 image
  is taken for a stack of H 2D slices. `get_sam_model` builds only the official
  architectures (it tells them apart by the encoder width), so the demo model is
  built from segment-anything's classes and wrapped in `SamPredictor`, micro-sam's
  predictor type.
- Ours: its own batching and decoder (no image re-projection per prompt),
  predicted IoU known before upscaling, stability screened at low resolution,
  image-size logits only inside each candidate's box; masks without a pixel are
  dropped; box NMS on exclusive-end boxes, so IoUs at the NMS margin differ
  slightly from stock's; "masks" counts the overlapping masks after NMS, before
  overlap resolution.

One click once the embedding exists (mean of 20 clicks after one warm-up click;
stock: `SamPredictor.predict`, its 3 outputs at image size; ours:
`SamSession.predict`, the best output):

{click_table}
"""
    dump = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "meta": meta,
        "auto_bf16": auto_bf16,
        "elapsed_s": elapsed,
        "results": {key: {s: _raw(r) for s, r in sides.items()} for key, sides in results.items()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(dump, indent=1))
    if args.write:
        write_section("sam", md)
    else:
        print(md)
    print(f"raw results: {args.json}")


if __name__ == "__main__":
    main()
