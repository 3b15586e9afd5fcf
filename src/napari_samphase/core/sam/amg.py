"""Fast segment-everything over one cached image embedding.

Same recipe as segment-anything's ``SamAutomaticMaskGenerator`` (a grid of
single-point prompts, three outputs each, predicted-IoU and stability filters,
box NMS) with less work per prompt:

* the decoder never re-projects the image (:mod:`fast_decoder`);
* predicted IoU is known before upscaling: prompts with no output above the
  threshold are never upscaled;
* stability is screened on the low-res logits; only masks that may pass are
  upsampled to the image (only inside their bounding box), where the stock
  stability score decides;
* optionally, grid points already inside an accepted mask are skipped
  (``skip_covered``), since they mostly reproduce that mask;
* no RLE round trips: masks stay as cropped boolean arrays.
"""

from __future__ import annotations

import numpy as np

from napari_samphase.core.image.labels import Segmentation, paint_masks, table_from_labels
from napari_samphase.core.progress import ProgressCallback, report


def point_grid(n_per_side: int, shape) -> np.ndarray:
    """(row, col) grid like segment-anything's ``build_point_grid``, in pixels."""
    offset = 1.0 / (2 * n_per_side)
    t = np.linspace(offset, 1 - offset, n_per_side)
    rr, cc = np.meshgrid(t * shape[0], t * shape[1], indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def segment_everything(
    session,
    points_per_side: int = 32,
    pred_iou_thresh: float | None = None,
    stability_thresh: float | None = None,
    stability_offset: float = 1.0,
    box_nms_thresh: float = 0.7,
    min_area: int = 0,
    batch_size: int | None = None,
    skip_covered: bool = False,
    screen_margin: float = 0.15,
    progress: ProgressCallback | None = None,
) -> Segmentation:
    import torch
    from torchvision.ops import nms

    from napari_samphase.core.sam.registry import MODELS, ModelSpec

    # None: the thresholds registered for this model (ModelSpec's, SAM's, otherwise).
    spec = MODELS.get(session.name, ModelSpec)
    if pred_iou_thresh is None:
        pred_iou_thresh = spec.pred_iou_thresh
    if stability_thresh is None:
        stability_thresh = spec.stability_thresh
    if batch_size is None:
        # On a CPU, small batches keep the per-prompt image tensors in cache (measured
        # about 2x faster than 64); a GPU wants large ones.
        batch_size = 4 if session.device.type == "cpu" else 64
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
        stab_low = inter / union
        # The low-res stability screens out clear failures; the rest get the exact
        # image-size logits (inside their box) and the stock stability score.
        maybe = torch.nonzero(stab_low >= stability_thresh - screen_margin).ravel()
        for k in maybe.tolist():
            found = _image_logits(session, logits[k], thr)
            if found is None:
                continue
            box, crop_logits = found
            stab = float((crop_logits > thr + stability_offset).sum()) / max(
                int((crop_logits > thr - stability_offset).sum()), 1
            )
            if stab < stability_thresh:
                continue
            crop = crop_logits > thr
            if not crop.any():
                continue
            rr = np.nonzero(crop.any(1))[0]
            cc = np.nonzero(crop.any(0))[0]
            crop = crop[rr[0] : rr[-1] + 1, cc[0] : cc[-1] + 1]
            box = (box[0] + rr[0], box[1] + cc[0], box[0] + rr[-1] + 1, box[1] + cc[-1] + 1)
            boxes.append(box)
            crops.append(crop)
            ious.append(float(iou[rows[sel_p[k]], sel_m[k]]))
            stabs.append(stab)
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
    pts_arr = np.asarray(points, float).reshape(-1, 2)
    extra = {}  # per-candidate values, indexed by final label id (row 0: background)
    for name, values in (
        ("predicted_iou", ious),
        ("stability", stabs),
        ("point_row", pts_arr[:, 0]),
        ("point_col", pts_arr[:, 1]),
    ):
        col = np.zeros(len(final) + 1)
        col[1:] = np.asarray(values, float)[final]
        extra[name] = col
    raw = [(boxes[i], crops[i]) for i in keep]
    return Segmentation(labels_img, table_from_labels(labels_img, extra), "sam", raw)


def _image_logits(session, low, thr: float):
    """Logits at image size inside the mask's (padded) box, computed exactly as
    segment-anything's ``postprocess_masks`` does for the whole image: bilinear to the
    model's input frame, crop the padding, bilinear to the image size."""
    h, w = session.original_size
    on = low > thr - 4.0  # generous: bilinear interpolation can raise nearby pixels
    if not on.any():
        return None
    rows = on.any(1).nonzero().ravel()
    cols = on.any(0).nonzero().ravel()
    ih, iw = session.input_size
    up = session.img_size / low.shape[-1]  # low-res -> input frame (4 for SAM)
    # box in image pixels, from the low-res box (one low-res pixel of margin)
    r0 = max(int(np.floor((int(rows[0]) - 1) * up * h / ih)), 0)
    r1 = min(int(np.ceil((int(rows[-1]) + 2) * up * h / ih)), h)
    c0 = max(int(np.floor((int(cols[0]) - 1) * up * w / iw)), 0)
    c1 = min(int(np.ceil((int(cols[-1]) + 2) * up * w / iw)), w)
    # step 2 positions (image -> cropped input frame), then the step 1 rows they need
    ys = ((np.arange(r0, r1) + 0.5) * ih / h - 0.5).clip(0, ih - 1)
    xs = ((np.arange(c0, c1) + 0.5) * iw / w - 0.5).clip(0, iw - 1)
    ya, yb = int(np.floor(ys[0])), min(int(np.floor(ys[-1])) + 1, ih - 1)
    xa, xb = int(np.floor(xs[0])), min(int(np.floor(xs[-1])) + 1, iw - 1)
    fy = ((np.arange(ya, yb + 1) + 0.5) / up - 0.5).clip(0, low.shape[0] - 1)
    fx = ((np.arange(xa, xb + 1) + 0.5) / up - 0.5).clip(0, low.shape[1] - 1)
    frame = _bilinear(low, fy, fx)  # the input-frame logits on the rows/cols needed
    import torch

    crop = _bilinear(torch.from_numpy(frame), ys - ya, xs - xa)
    return (r0, c0, r1, c1), crop


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
