"""Training the small ``demo-synthetic`` SAM on synthetic micrographs (CPU, minutes).

The result is a test and demo asset: it proves the SAM plumbing and behaviour
(a click in a particle returns that particle) offline. It has only ever seen
synthetic images and is not a model for real micrographs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.image.synthetic import make_micrograph, random_styles
from napari_samphase.core.progress import ProgressCallback, report

IMG = 256


def synthetic_pool(n: int, seed: int, random_style_prob: float = 0.5):
    """``n`` random 256x256 micrographs; some with randomised phase styles."""
    rng = np.random.default_rng(seed)
    pool = []
    for _ in range(n):
        n_phases = int(rng.integers(1, 5))
        lo = rng.uniform(4.0, 10.0)
        pool.append(
            make_micrograph(
                (IMG, IMG),
                n_particles=int(rng.integers(6, 45)),
                radius=(lo, lo * rng.uniform(1.5, 3.5)),
                noise=rng.uniform(0.005, 0.06),
                blur=rng.uniform(0.3, 1.5),
                gradient=rng.uniform(0.0, 0.15),
                gap=int(rng.integers(1, 5)),
                seed=int(rng.integers(1 << 31)),
                styles=random_styles(n_phases, rng) if rng.random() < random_style_prob else None,
                n_phases=min(n_phases, 3),
            )
        )
    return pool


def sample_prompt(instances: np.ndarray, rng: np.random.Generator, matrix_prob: float = 0.15):
    """A target mask and one interior point (x, y) on it, plus an optional second point."""
    ids = np.unique(instances)
    ids = ids[ids > 0]
    if len(ids) == 0 or rng.random() < matrix_prob:
        target = instances == 0
    else:
        target = instances == rng.choice(ids)
    dist = ndi.distance_transform_edt(target)
    # Users click well inside objects; also sample near edges sometimes.
    floor = dist.max() * (0.25 if rng.random() < 0.8 else 0.0)
    ys, xs = np.nonzero(dist > max(floor, 0.5))
    if len(ys) == 0:
        ys, xs = np.nonzero(target)
    i = rng.integers(len(ys))
    return target, (xs[i], ys[i])


def train_demo_model(
    out: str | Path,
    steps: int = 2000,
    batch: int = 2,
    prompts: int = 24,
    pool_size: int = 400,
    lr: float = 1e-3,
    seed: int = 0,
    two_click_prob: float = 0.2,
    matrix_prob: float = 0.1,
    random_style_prob: float = 0.3,
    multimask: bool = True,
    snapshot_every: int = 0,
    progress: ProgressCallback | None = None,
) -> dict:
    """Train from scratch and save fp16 weights to ``out``; returns a summary dict."""
    import torch
    import torch.nn.functional as F

    from napari_samphase.core.sam.architectures import build_demo_sam

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    sam = build_demo_sam().train()
    pool = synthetic_pool(pool_size, seed, random_style_prob)
    images = torch.stack([torch.from_numpy(np.repeat(m.image[None], 3, 0)).float() for m in pool])
    images = (images - sam.pixel_mean) / sam.pixel_std
    opt = torch.optim.AdamW(sam.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    pe = None
    low = sam.prompt_encoder.mask_input_size[0]  # low-res logits: 4 x embedding grid
    t0 = time.perf_counter()
    history = []
    for step in range(steps):
        idx = rng.choice(len(pool), batch, replace=False)
        emb = sam.image_encoder(images[idx])
        pe = sam.prompt_encoder.get_dense_pe()
        total = 0.0
        for b, i in enumerate(idx):
            inst = pool[i].instances
            groups = {1: ([], [], []), 2: ([], [], [])}  # clicks -> targets, points, labels
            for _ in range(prompts):
                target, (x, y) = sample_prompt(inst, rng, matrix_prob)
                p, lab = [[x + 0.5, y + 0.5]], [1]
                # second click: a negative outside, or a positive inside
                if rng.random() < two_click_prob:
                    _, (x2, y2) = sample_prompt(inst, rng, matrix_prob=0.0)
                    if target[y2, x2]:
                        ys, xs = np.nonzero(target)
                        j = rng.integers(len(ys))
                        x2, y2 = xs[j], ys[j]
                    p.append([x2 + 0.5, y2 + 0.5])
                    lab.append(int(target[y2, x2]))
                g = groups[len(p)]
                g[0].append(target)
                g[1].append(p)
                g[2].append(lab)
            for clicks, (targets, pts, labels) in groups.items():
                if not targets:
                    continue
                tgt = torch.from_numpy(np.stack(targets)).float()[:, None]
                tgt_low = F.adaptive_avg_pool2d(tgt, low)
                # The prompt encoder appends SAM's padding point, as at inference.
                sparse, dense = sam.prompt_encoder(
                    points=(torch.tensor(pts, dtype=torch.float32), torch.tensor(labels)),
                    boxes=None,
                    masks=None,
                )
                logits, iou_pred = _decode_all(sam, emb[b : b + 1], pe, sparse, dense)
                # logits: P x 4 x low x low (token 0 = single-mask output, 1..3 = multimask)
                # Class-balanced BCE: a particle covers ~1% of the image, and plain BCE
                # settles on empty masks, where the dice gradient vanishes.
                pos = tgt_low.mean((2, 3), keepdim=True).clamp(1e-3, 1 - 1e-3)
                weight = tgt_low * (0.5 / pos) + (1 - tgt_low) * (0.5 / (1 - pos))
                bce = F.binary_cross_entropy_with_logits(
                    logits,
                    tgt_low.expand_as(logits),
                    weight=weight.expand_as(logits),
                    reduction="none",
                ).mean((2, 3))
                prob = logits.sigmoid()
                inter = (prob * tgt_low).sum((2, 3))
                dice = 1 - (2 * inter + 1) / (prob.sum((2, 3)) + tgt_low.sum((2, 3)) + 1)
                per = bce + dice
                with torch.no_grad():
                    hard = logits > 0
                    t_hard = tgt_low > 0.5
                    true_iou = (hard & t_hard).sum((2, 3)).float() / (
                        (hard | t_hard).sum((2, 3)).float().clamp(min=1)
                    )
                # One click: best of the three multimask outputs (SAM's recipe);
                # two clicks: the single-mask output.
                mask_loss = per[:, 1:].min(1).values if clicks == 1 and multimask else per[:, 0]
                total = (
                    total
                    + (mask_loss.sum() + F.mse_loss(iou_pred, true_iou, reduction="sum") / 4)
                    / prompts
                )
        loss = total / batch
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(sam.parameters(), 1.0)
        opt.step()
        sched.step()
        history.append(loss.item())
        if snapshot_every and (step + 1) % snapshot_every == 0:
            torch.save(sam.state_dict(), f"{out}.step{step + 1}")
        report(progress, step + 1, steps, f"loss {np.mean(history[-20:]):.3f}")
    sam.eval()
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in sam.state_dict().items()}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, out)
    return {
        "steps": steps,
        "seconds": time.perf_counter() - t0,
        "final_loss": float(np.mean(history[-50:])),
        "parameters": sum(p.numel() for p in sam.parameters()),
        "bytes": out.stat().st_size,
    }


def _decode_all(sam, emb, pe, sparse, dense):
    """All four mask tokens' low-res logits and IoU predictions (training needs both)."""
    dec = sam.mask_decoder
    return dec.predict_masks(
        image_embeddings=emb,
        image_pe=pe,
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
    )


def evaluate_clicks(
    session, n_images: int = 8, clicks: int = 10, seed: int = 12345, shape=(256, 256)
) -> float:
    """Mean IoU of one click at a particle's deepest point vs that particle."""
    from napari_samphase.core.training.prompts import deepest_pixel

    rng = np.random.default_rng(seed)
    ious = []
    for i in range(n_images):
        m = make_micrograph(shape, n_particles=30, seed=seed + i)
        session.set_image(m.image)
        ids = rng.permutation(np.unique(m.instances)[1:])[:clicks]
        for j in ids:
            target = m.instances == j
            mask = session.predict([deepest_pixel(target)]).mask
            ious.append((mask & target).sum() / max((mask | target).sum(), 1))
    return float(np.mean(ious))
