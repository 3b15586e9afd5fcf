"""Fast segment-everything over one cached image embedding.

Same recipe as segment-anything's ``SamAutomaticMaskGenerator`` (a grid of
single-point prompts, three outputs each, predicted-IoU and stability filters,
box NMS) with less work per prompt:

* the decoder never re-projects the image (:mod:`fast_decoder`);
* predicted IoU is known before upscaling: prompts with no output above the
  threshold are never upscaled;
* stability is measured on the low-res logits; only kept masks are upsampled to
  the image, and only inside their bounding box;
* optionally, grid points already inside an accepted mask are skipped
  (``skip_covered``), since they mostly reproduce that mask;
* no RLE round trips: masks stay as cropped boolean arrays.
"""

from __future__ import annotations

import numpy as np

from .masks import Segmentation, paint_masks, table_from_labels
from .progress import ProgressCallback, report


def point_grid(n_per_side: int, shape) -> np.ndarray:
    """(row, col) grid like segment-anything's ``build_point_grid``, in pixels."""
    offset = 1.0 / (2 * n_per_side)
    t = np.linspace(offset, 1 - offset, n_per_side)
    rr, cc = np.meshgrid(t * shape[0], t * shape[1], indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def segment_everything(
    session,
    points_per_side: int = 32,
    pred_iou_thresh: float = 0.88,
    stability_thresh: float = 0.95,
    stability_offset: float = 1.0,
    box_nms_thresh: float = 0.7,
    min_area: int = 0,
    batch_size: int = 64,
    skip_covered: bool = False,
    progress: ProgressCallback | None = None,
) -> Segmentation:
    import torch
    from torchvision.ops import nms

    h, w = session.original_size
    thr = session.sam.mask_threshold
    # SAM's grid is in (x, y) of the image; the pixel-centre shift in to_model_coords
    # is undone here so the prompts land exactly where the stock generator puts them.
    grid = point_grid(points_per_side, (h, w)) - 0.5
    covered = np.zeros((h, w), bool) if skip_covered else None
    boxes, crops, ious, stabs, points = [], [], [], [], []
    dev = session.device
    n = len(grid)
    for start in range(0, n, batch_size):
        report(progress, start, n, "segment everything")
        pts = grid[start : start + batch_size]
        if covered is not None:
            rc = np.clip(np.round(pts).astype(int), 0, [h - 1, w - 1])
            pts = pts[~covered[rc[:, 0], rc[:, 1]]]
            if len(pts) == 0:
                continue
        coords = torch.as_tensor(
            session.to_model_coords(pts)[:, None], dtype=torch.float32, device=dev
        )
        labels = torch.ones((len(pts), 1), dtype=torch.int64, device=dev)
        iou, hyper, keys = session.decoder.transformer(session.decoder.sparse(coords, labels))
        iou = iou[:, 1:]  # multimask outputs
        ok = iou > pred_iou_thresh
        rows = torch.nonzero(ok.any(1)).ravel()
        if len(rows) == 0:
            continue
        low = session.decoder.upscale(keys[rows], hyper[rows, 1:])  # R x 3 x lh x lw
        sel_p, sel_m = torch.nonzero(ok[rows], as_tuple=True)
        logits = low[sel_p, sel_m]  # K x lh x lw
        scale = logits.shape[-1] / session.img_size
        ch = round(session.input_size[0] * scale)
        cw = round(session.input_size[1] * scale)
        logits = logits[:, :ch, :cw]
        inter = (logits > thr + stability_offset).sum((1, 2))
        union = (logits > thr - stability_offset).sum((1, 2)).clamp(min=1)
        stab = inter / union
        good = torch.nonzero(stab >= stability_thresh).ravel()
        for k in good.tolist():
            mask = _full_mask(session, logits[k], ch, cw, thr)
            if mask is None:
                continue
            box, crop = mask
            boxes.append(box)
            crops.append(crop)
            ious.append(float(iou[rows[sel_p[k]], sel_m[k]]))
            stabs.append(float(stab[k]))
            points.append(pts[int(rows[sel_p[k]])] + 0.5)
            if covered is not None:
                covered[box[0] : box[2], box[1] : box[3]] |= crop
    report(progress, n, n, "segment everything")
    if boxes:
        b = torch.as_tensor(np.array(boxes)[:, [1, 0, 3, 2]], dtype=torch.float32)
        keep = nms(b, torch.as_tensor(ious), box_nms_thresh).numpy()
    else:
        keep = np.zeros(0, int)
    keep = keep[np.array([crops[i].sum() >= max(min_area, 1) for i in keep], bool)]
    labels_img, kept = paint_masks(
        (h, w),
        [boxes[i] for i in keep],
        [crops[i] for i in keep],
        np.array([ious[i] for i in keep]),
        min_area,
    )
    final = keep[kept]
    extra = {}
    for name, values in (("predicted_iou", ious), ("stability", stabs)):
        col = np.zeros(len(final) + 1)
        col[1:] = np.asarray(values)[final] if len(final) else []
        extra[name] = col
    pts_arr = np.asarray(points).reshape(-1, 2)
    for j, name in enumerate(("point_row", "point_col")):
        col = np.zeros(len(final) + 1)
        col[1:] = pts_arr[final, j] if len(final) else []
        extra[name] = col
    return Segmentation(labels_img, table_from_labels(labels_img, extra), "sam")


def _full_mask(session, low, ch: int, cw: int, thr: float):
    """Upsample one low-res logit map inside its (padded) bounding box only."""
    h, w = session.original_size
    on = low > thr - 4.0  # generous: bilinear interpolation can raise nearby pixels
    if not on.any():
        return None
    rows = on.any(1).nonzero().ravel()
    cols = on.any(0).nonzero().ravel()
    lr0, lr1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, ch)
    lc0, lc1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, cw)
    sy, sx = h / ch, w / cw
    r0, r1 = int(np.floor(lr0 * sy)), min(int(np.ceil(lr1 * sy)), h)
    c0, c1 = int(np.floor(lc0 * sx)), min(int(np.ceil(lc1 * sx)), w)
    # Interpolate the full map's geometry restricted to the box: align_corners=False
    # sampling positions of the whole image, evaluated only for rows r0:r1, cols c0:c1.
    ys = ((np.arange(r0, r1) + 0.5) / sy - 0.5).clip(0, ch - 1)
    xs = ((np.arange(c0, c1) + 0.5) / sx - 0.5).clip(0, cw - 1)
    crop = _bilinear(low, ys, xs) > thr
    if not crop.any():
        return None
    rr = np.nonzero(crop.any(1))[0]
    cc = np.nonzero(crop.any(0))[0]
    crop = crop[rr[0] : rr[-1] + 1, cc[0] : cc[-1] + 1]
    box = (r0 + rr[0], c0 + cc[0], r0 + rr[-1] + 1, c0 + cc[-1] + 1)
    return box, crop


def _bilinear(img, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Sample a 2D tensor at fractional rows ``ys`` x cols ``xs`` (separable)."""
    import torch

    y0 = np.floor(ys).astype(int)
    x0 = np.floor(xs).astype(int)
    y1 = np.minimum(y0 + 1, img.shape[0] - 1)
    x1 = np.minimum(x0 + 1, img.shape[1] - 1)
    fy = torch.as_tensor(ys - y0, dtype=img.dtype)[:, None]
    fx = torch.as_tensor(xs - x0, dtype=img.dtype)[None, :]
    rows = img[y0] * (1 - fy) + img[y1] * fy  # len(ys) x W
    out = rows[:, x0] * (1 - fx) + rows[:, x1] * fx
    return out.cpu().numpy()
