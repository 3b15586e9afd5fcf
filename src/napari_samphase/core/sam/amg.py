"""Automatic mask generation (segment everything) over one cached image embedding.

The steps of segment-anything's ``SamAutomaticMaskGenerator``, sign-posted:

1. **prompts**: a grid of single-point prompts (:func:`point_grid`);
2. **decode**: three outputs per prompt, kept as low-res logits cropped around each
   mask (:meth:`AutomaticMaskGenerator.initialize`, the only step that runs the
   decoder);
3. **predicted IoU** filter;
4. **stability** filter (:func:`stability_score`, on the image-size logits);
5. **box NMS**;
6. **paint**: one label image, the highest predicted IoU on top.

Steps 3-6 are :meth:`AutomaticMaskGenerator.generate`: changing a threshold re-runs
them only, and the image-size scores of a mask are computed once, on first use.
Less work than the stock generator per prompt: the decoder never re-projects the
image (:mod:`fast_decoder`), image-size logits are computed only inside each mask's
box, in batches, and masks stay cropped boolean arrays (no RLE round trips).
"""

from __future__ import annotations

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.labels import Segmentation, paint_masks, table_from_labels
from napari_samphase.core.progress import ProgressCallback, report

# Logits are kept down to this far below the mask threshold; a bilinear sample never
# exceeds its neighbours, so everything outside lies below ``threshold - BAND`` and
# stability offsets up to BAND are exact.
BAND = 4.0
MARGIN = 2  # low-res pixels around the band: one image pixel reads three in a row
CHUNK_ELEMENTS = 1 << 20  # image-size logits per scoring batch


def point_grid(n_per_side: int, shape) -> np.ndarray:
    """(row, col) grid like segment-anything's ``build_point_grid``, in pixels."""
    offset = 1.0 / (2 * n_per_side)
    t = np.linspace(offset, 1 - offset, n_per_side)
    rr, cc = np.meshgrid(t * shape[0], t * shape[1], indexing="ij")
    return np.stack([rr.ravel(), cc.ravel()], axis=1)


def stability_score(logits, threshold: float, offset: float):
    """SAM's stability score of logit tensors (float64): IoU of the masks at
    ``threshold +- offset`` (one always holds the other) over the last two axes; 0
    where both are empty (segment-anything: NaN)."""
    import torch

    inter = (logits > threshold + offset).sum((-2, -1), dtype=torch.int32)
    union = (logits > threshold - offset).sum((-2, -1), dtype=torch.int32)
    return inter.double() / union.clamp(min=1).double()


class AutomaticMaskGenerator:
    """Segment everything on the session's current image, decoding once.

    ``initialize()`` runs the decoder over the grid prompts; ``generate(...)`` applies
    the thresholds and never runs the decoder, so re-generating with other thresholds
    costs a fraction of the first run.

    Parameters
    ----------
    session
        A :class:`SamSession` with an image set.
    points_per_side
        Grid prompts per image side (``points_per_side**2`` prompts).
    batch_size
        Prompts decoded at once; None: 64 on a GPU; on a CPU as many as keep the
        per-prompt image tensors about as large as 4 prompts of SAM's 64x64x256
        embedding (measured about 2x faster than 64 there).
    """

    def __init__(self, session, points_per_side: int = 32, batch_size: int | None = None):
        if points_per_side < 1:
            raise InputError("points_per_side must be at least 1")
        self.session = session
        self.points_per_side = int(points_per_side)
        self.batch_size = batch_size
        self._key = None  # the session embedding the candidates came from

    # -- 1-2. prompts and decoding ---------------------------------------------------
    def initialize(
        self, progress: ProgressCallback | None = None, min_pred_iou: float | None = None
    ) -> AutomaticMaskGenerator:
        """Decode every grid prompt and keep what :meth:`generate` needs: per output,
        its predicted IoU and its low-res logits inside the box where they come within
        ``BAND`` of the mask threshold (plus a small margin), in fp32.

        Parameters
        ----------
        progress
            ``(done, total, message)`` callback in prompts; may cancel between batches.
        min_pred_iou
            Keep only outputs whose predicted IoU is above this (faster, less memory;
            :meth:`generate` then refuses lower ``pred_iou_thresh``). None: keep all.
        """
        self._decode(progress, min_pred_iou, cover=None)
        return self

    def _decode(self, progress, min_pred_iou, cover) -> None:
        """``cover``: None, or (pred_iou_thresh, stability_thresh, offset) with which
        grid points inside an accepted mask are not decoded (``skip_covered``)."""
        import torch

        s = self.session
        s._require_image()
        frame, thr, dev = s.frame, s.sam.mask_threshold, s.device
        ch, cw = frame.crop
        self._thr, self._frame, self._min_iou = thr, frame, min_pred_iou
        self._matrices = [torch.as_tensor(m, device=dev) for m in frame.matrices]
        self._key = None  # set once every prompt is decoded (a cancel leaves none)
        self._patches: list = []
        self._origin, self._img_box, self._iou, self._points = [], [], [], []
        self._area = np.zeros(0, np.int64)  # image-size scores, computed on first use
        self._box = np.zeros((0, 4), np.int64)
        self._stab: dict[float, np.ndarray] = {}
        h, w = frame.original_size
        # SAM's grid is in (x, y) of the image; the pixel-centre shift in to_model_coords
        # is undone here so the prompts land exactly where the stock generator puts them.
        grid = point_grid(self.points_per_side, (h, w)) - 0.5
        covered = np.zeros((h, w), bool) if cover is not None else None
        n, bs = len(grid), self.batch_size or self._default_batch()
        for start in range(0, n, bs):
            report(progress, start, n, "segment everything")
            pts = grid[start : start + bs]
            if covered is not None:
                rc = np.clip(np.round(pts).astype(int), 0, [h - 1, w - 1])
                pts = pts[~covered[rc[:, 0], rc[:, 1]]]
                if len(pts) == 0:
                    continue
            coords = torch.as_tensor(s.to_model_coords(pts)[:, None], dtype=torch.float32)
            labels = torch.ones((len(pts), 1), dtype=torch.int64, device=dev)
            iou, hyper, keys = s.decoder.transformer(s.decoder.sparse(coords.to(dev), labels))
            iou = iou[:, 1:]  # the three multimask outputs
            ok = torch.ones_like(iou, dtype=torch.bool)
            if min_pred_iou is not None:  # outputs never upscaled: the cheap filter
                ok = iou > min_pred_iou
            rows = torch.nonzero(ok.any(1)).ravel()
            if len(rows) == 0:
                continue
            low = s.decoder.upscale(keys[rows], hyper[rows, 1:])[..., :ch, :cw]
            sel_p, sel_m = torch.nonzero(ok[rows], as_tuple=True)
            first = len(self._iou)
            self._keep_band(
                low[sel_p, sel_m],
                iou[rows[sel_p], sel_m].cpu().numpy(),
                pts[rows[sel_p].cpu().numpy()] + 0.5,
            )
            if covered is not None:
                self._cover(covered, np.arange(first, len(self._iou)), *cover)
        report(progress, n, n, "segment everything")
        self._key = s.key

    def _default_batch(self) -> int:
        if self.session.device.type != "cpu":
            return 64
        return max(4, (4 * 256 * 64 * 64) // self.session.embedding[0].numel())

    def _keep_band(self, logits, ious: np.ndarray, points: np.ndarray) -> None:
        """Store each output's logits inside its band box (outputs with no logit in the
        band are empty at every offset up to BAND: dropped)."""
        band = logits > self._thr - BAND  # K x ch x cw
        r0, r1 = _extent(band.any(2))
        c0, c1 = _extent(band.any(1))
        ch, cw = logits.shape[-2:]
        # image pixels whose taps touch the band box (the rest lie below the band);
        # they read low-res pixels within MARGIN of it
        (first_r, last_r), (first_c, last_c) = self._frame.reads
        boxes = np.stack(
            [
                np.searchsorted(last_r, r0),
                np.searchsorted(last_c, c0),
                np.searchsorted(first_r, r1),
                np.searchsorted(first_c, c1),
            ],
            1,
        )
        seen = (r1 > r0) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        for k in np.nonzero(seen)[0]:
            py0, px0 = max(r0[k] - MARGIN, 0), max(c0[k] - MARGIN, 0)
            py1, px1 = min(r1[k] + MARGIN, ch), min(c1[k] + MARGIN, cw)
            patch = logits[k, py0:py1, px0:px1]
            # a view keeps the batch's logits alive: worth it for most of the frame only
            small = patch.numel() < logits[k].numel() // 2
            self._patches.append(patch.clone() if small else patch)
            self._origin.append((py0, px0))
            self._img_box.append(tuple(boxes[k]))
            self._iou.append(float(ious[k]))
            self._points.append(points[k])

    def _cover(self, covered, ids, iou_thresh, stab_thresh, offset) -> None:
        iou = np.asarray(self._iou)[ids]
        ids = ids[iou > iou_thresh] if iou_thresh > 0 else ids
        self._grow()
        stab = self._measure(ids, offset if stab_thresh > 0 else None)
        accepted = ids[self._area[ids] > 0]
        if stab_thresh > 0:
            accepted = accepted[stab[accepted] >= stab_thresh]
        for box, crop in self._measure(accepted, masks=True):
            covered[box[0] : box[2], box[1] : box[3]] |= crop

    # -- 3-6. filters and painting ---------------------------------------------------
    def generate(
        self,
        pred_iou_thresh: float | None = None,
        stability_thresh: float | None = None,
        stability_offset: float = 1.0,
        box_nms_thresh: float = 0.7,
        min_area: int = 0,
        progress: ProgressCallback | None = None,
    ) -> Segmentation:
        """Filter, de-duplicate and paint the decoded masks (no decoder call).

        Parameters
        ----------
        pred_iou_thresh
            Keep outputs whose predicted IoU is above this (not applied if <= 0, as in
            segment-anything). None: ``session.thresholds``.
        stability_thresh
            Keep masks whose stability score is at least this (not applied if <= 0).
            None: ``session.thresholds``.
        stability_offset
            Logit offset of the stability score (0 < offset <= ``BAND``).
        box_nms_thresh
            Box IoU above which the mask with the lower predicted IoU is dropped.
        min_area
            Drop masks smaller than this, and masks left smaller by overlaps.
        progress
            ``(done, total, message)`` callback in masks scored for the first time.

        Returns
        -------
        Segmentation
            Label image, one table row per mask (area, bbox, predicted IoU, stability,
            prompt point) and the masks before overlaps were resolved (``.masks``).
        """
        import torch
        from torchvision.ops import nms

        if self._key is None:
            raise InputError("call initialize() first")
        if self.session.key != self._key:
            raise InputError("the session's image changed: call initialize() again")
        if not 0 < stability_offset <= BAND:
            raise InputError(f"stability_offset must be in (0, {BAND:g}]")
        t = self.session.thresholds
        iou_t = t.pred_iou_thresh if pred_iou_thresh is None else float(pred_iou_thresh)
        stab_t = t.stability_thresh if stability_thresh is None else float(stability_thresh)
        if self._min_iou is not None and iou_t < self._min_iou:
            raise InputError(
                f"initialize() kept outputs with predicted IoU above {self._min_iou:g} "
                f"only: pred_iou_thresh {iou_t:g} needs initialize(min_pred_iou=None)"
            )
        self._grow()
        iou = np.asarray(self._iou, np.float64)
        ids = np.arange(len(iou))
        # 3. predicted IoU
        if iou_t > 0:
            ids = ids[iou[ids] > iou_t]
        # 4. stability, on the image-size logits inside each mask's box (and the box
        # and area NMS needs: computed once per candidate, kept for the next call)
        offset = stability_offset if stab_t > 0 else None
        self._measure(ids, offset, progress=progress)
        ids = ids[self._area[ids] > 0]
        if stab_t > 0:
            ids = ids[self._stab[offset][ids] >= stab_t]
        # 5. box NMS (boxes as (x0, y0, x1, y1), end-exclusive)
        if len(ids):
            boxes = torch.as_tensor(self._box[ids][:, [1, 0, 3, 2]], dtype=torch.float32)
            scores = torch.as_tensor(iou[ids], dtype=torch.float32)
            keep = ids[nms(boxes, scores, box_nms_thresh).numpy()]
        else:
            keep = ids
        keep = keep[self._area[keep] >= max(min_area, 1)]
        # 6. paint
        crops = self._measure(keep, stability_offset, masks=True)  # stability for the table
        stab = self._stab[stability_offset]
        labels, painted = paint_masks(
            self._frame.original_size,
            [box for box, _ in crops],
            [crop for _, crop in crops],
            iou[keep],
            min_area,
        )
        final = keep[painted]
        points = np.asarray(self._points, float).reshape(-1, 2)
        extra = {}  # per-mask values, indexed by final label id (row 0: background)
        for name, values in (
            ("predicted_iou", iou),
            ("stability", stab),
            ("point_row", points[:, 0]),
            ("point_col", points[:, 1]),
        ):
            col = np.zeros(len(final) + 1)
            col[1:] = values[final]
            extra[name] = col
        return Segmentation(labels, table_from_labels(labels, extra), "sam", crops)

    @property
    def n_candidates(self) -> int:
        """Decoded outputs kept by :meth:`initialize`."""
        return len(getattr(self, "_iou", ()))

    # -- image-size scores -----------------------------------------------------------
    def _grow(self) -> None:
        """Size the per-candidate score arrays (candidates arrive batch by batch)."""
        n, old = len(self._iou), len(self._area)
        if n > old:
            self._area = np.concatenate([self._area, np.full(n - old, -1, np.int64)])
            self._box = np.concatenate([self._box, np.zeros((n - old, 4), np.int64)])
            for off, stab in self._stab.items():
                self._stab[off] = np.concatenate([stab, np.full(n - old, np.nan)])

    def _measure(self, ids: np.ndarray, offset: float | None = None, masks=False, progress=None):
        """Image-size scores of candidates ``ids``, each computed once: area and mask
        box always, stability at ``offset`` if given. Returns the stability array of
        ``offset`` (NaN where not computed), or with ``masks`` the (box, cropped bool
        mask) of each of ``ids``, in order."""
        if offset is not None:
            stab = self._stab.setdefault(offset, np.full(len(self._iou), np.nan))
            missing = (self._area[ids] < 0) | np.isnan(stab[ids])
        else:
            stab, missing = None, self._area[ids] < 0
        todo = ids if masks else ids[missing]
        import torch

        thr, out, done = self._thr, {}, 0
        for chunk in self._chunks(todo):
            report(progress, done, len(todo), "scoring masks")
            logits = self._logits(chunk)
            on = logits > thr
            per_row = on.sum(2, dtype=torch.int32)
            self._area[chunk] = per_row.sum(1).cpu().numpy()
            r0, r1 = _extent(per_row > 0)
            c0, c1 = _extent(on.any(1))
            origin = self._img_origin(chunk)
            self._box[chunk] = np.stack([r0, c0, r1, c1], 1) + np.tile(origin, 2)
            if stab is not None:
                stab[chunk] = stability_score(logits, thr, offset).cpu().numpy()
            if masks:
                on = on.cpu().numpy()
                for b, i in enumerate(chunk):
                    box = tuple(int(v) for v in self._box[i])
                    r, c = box[0] - origin[b, 0], box[1] - origin[b, 1]
                    out[i] = (box, on[b, r : r + box[2] - box[0], c : c + box[3] - box[1]].copy())
            done += len(chunk)
        if len(todo) and not masks:
            report(progress, len(todo), len(todo), "scoring masks")
        return [out[i] for i in ids] if masks else stab

    def _img_origin(self, ids) -> np.ndarray:
        return np.array([self._img_box[i][:2] for i in ids], np.int64).reshape(-1, 2)

    def _chunks(self, ids: np.ndarray):
        """Batches of candidates of similar box size, each within CHUNK_ELEMENTS."""
        if len(ids) == 0:
            return
        boxes = np.array([self._img_box[i] for i in ids], np.int64)
        size = boxes[:, 2:] - boxes[:, :2]
        order = np.argsort(size.prod(1), kind="stable")
        start = 0
        while start < len(order):
            end, hw = start + 1, size[order[start]]
            while end < len(order):
                nxt = np.maximum(hw, size[order[end]])
                if (end - start + 1) * nxt.prod() > CHUNK_ELEMENTS:
                    break
                hw, end = nxt, end + 1
            yield ids[order[start:end]]
            start = end

    def _logits(self, ids: np.ndarray):
        """Image-size logits of candidates ``ids`` inside their boxes, as
        ``postprocess_masks`` computes them: B x R x C, -inf outside each box.

        Both bilinear steps along an axis are one matrix (:meth:`LogitFrame.matrices`),
        so a batch is two batched matrix products on the stored low-res patches."""
        import torch

        patches = [self._patches[i] for i in ids]
        dev, b = patches[0].device, len(ids)
        boxes = np.array([self._img_box[i] for i in ids], np.int64)
        origin = np.array([self._origin[i] for i in ids], np.int64)
        size = boxes[:, 2:] - boxes[:, :2]
        stack = torch.zeros(
            (b, max(p.shape[0] for p in patches), max(p.shape[1] for p in patches)),
            dtype=patches[0].dtype,
            device=dev,
        )
        for k, p in enumerate(patches):
            stack[k, : p.shape[0], : p.shape[1]] = p  # zero padding: never read
        rows, cols = (
            self._rows_of(axis, boxes[:, axis], size[:, axis].max(), origin[:, axis], n)
            for axis, n in ((0, stack.shape[1]), (1, stack.shape[2]))
        )
        out = rows @ stack @ cols.transpose(-1, -2)
        if (size != size.max(0)).any():  # boxes of different sizes share the batch
            r = torch.arange(out.shape[1], device=dev) < torch.as_tensor(size[:, :1], device=dev)
            c = torch.arange(out.shape[2], device=dev) < torch.as_tensor(size[:, 1:], device=dev)
            out.masked_fill_(~(r[:, :, None] & c[:, None, :]), -np.inf)
        return out

    def _rows_of(self, axis: int, start, n: int, origin, n_patch: int):
        """B x n x n_patch (or n x n_patch shared by the batch): the rows of the axis'
        interpolation matrix for the image positions ``start + 0..n`` and the patch's
        low-res positions."""
        import torch

        matrix = self._matrices[axis]
        s, o = int(start[0]), int(origin[0])
        fits = s + n <= matrix.shape[0] and o + n_patch <= matrix.shape[1]
        if fits and (start == s).all() and (origin == o).all():
            return matrix[s : s + n, o : o + n_patch]  # one block for all (whole-image masks)
        pos = np.minimum(start[:, None] + np.arange(n), matrix.shape[0] - 1)
        low = np.minimum(origin[:, None] + np.arange(n_patch), matrix.shape[1] - 1)
        dev = self._patches[0].device
        pos, low = torch.as_tensor(pos, device=dev), torch.as_tensor(low, device=dev)
        return matrix[pos[:, :, None], low[:, None, :]]


def _extent(any_along) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last True index per row of a B x n bool tensor (0, 0 if none)."""
    a = any_along.cpu().numpy()
    n = a.shape[1]
    first = np.argmax(a, axis=1)
    last = n - np.argmax(a[:, ::-1], axis=1)
    has = a.any(1)
    return np.where(has, first, 0), np.where(has, last, 0)


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
    progress: ProgressCallback | None = None,
) -> Segmentation:
    """Whole-image instance masks: :class:`AutomaticMaskGenerator` initialized and
    generated once (see there for the parameters; None thresholds: the session's).

    ``skip_covered``: grid points already inside an accepted mask (predicted IoU and
    stability passed) are not decoded; they mostly reproduce that mask. Which prompts
    are decoded then depends on the thresholds, so this is available here only.
    """
    gen = AutomaticMaskGenerator(session, points_per_side, batch_size)
    t = session.thresholds
    iou_t = t.pred_iou_thresh if pred_iou_thresh is None else pred_iou_thresh
    stab_t = t.stability_thresh if stability_thresh is None else stability_thresh
    # One threshold set: outputs below the IoU threshold are never upscaled.
    floor = iou_t if iou_t > 0 else None
    cover = (iou_t, stab_t, stability_offset) if skip_covered else None
    gen._decode(progress, floor, cover)
    return gen.generate(iou_t, stab_t, stability_offset, box_nms_thresh, min_area, progress)
