"""Instance label images and their per-mask records (any proposer's output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.errors import InputError
from napari_samphase.core.progress import ProgressCallback, report

COLUMNS = (
    "id",
    "area",
    "bbox_row0",
    "bbox_col0",
    "bbox_row1",
    "bbox_col1",
    "predicted_iou",
    "stability",
    "point_row",
    "point_col",
)


@dataclass
class Segmentation:
    """uint32 instance labels (0 = background, no overlaps) and one record per mask."""

    labels: np.ndarray
    table: dict[str, np.ndarray] = field(default_factory=dict)
    proposer: str = ""
    # SAM only: every mask kept after NMS, before overlaps were resolved, as
    # ((row0, col0, row1, col1), cropped bool mask) - what the stock generator returns.
    masks: list | None = field(default=None, repr=False)

    def dense_masks(self) -> list[np.ndarray]:
        """The overlapping masks as full-size boolean arrays."""
        out = []
        for (r0, c0, r1, c1), crop in self.masks or []:
            m = np.zeros(self.labels.shape, bool)
            m[r0:r1, c0:c1] = crop
            out.append(m)
        return out

    @property
    def n_masks(self) -> int:
        return len(self.table.get("id", ()))

    def to_csv(self, path: str | Path) -> None:
        from napari_samphase.core.image.io import write_table_csv

        write_table_csv(self.table, path)


def prompt_points(table) -> np.ndarray | None:
    """Each mask's prompt point (row, col) in order of mask id, from a per-mask table
    (dict of columns or a DataFrame such as ``layer.features``); None without one."""
    if "point_row" not in table or not len(table["id"]):
        return None
    order = np.argsort(np.asarray(table["id"]), kind="stable")
    return np.stack([np.asarray(table["point_row"]), np.asarray(table["point_col"])], 1)[order]


def check_labels(labels: np.ndarray, shape: tuple[int, ...] | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise InputError(f"label image must be 2D, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        if np.issubdtype(labels.dtype, np.floating) and np.all(labels == np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise InputError(f"label image must hold integers, got {labels.dtype}")
    if labels.min(initial=0) < 0:
        raise InputError("label image has negative ids")
    if shape is not None and labels.shape != tuple(shape[:2]):
        raise InputError(
            f"label image shape {labels.shape} does not match image shape {tuple(shape[:2])}"
        )
    return labels


def table_from_labels(labels: np.ndarray, extra: dict[str, np.ndarray] | None = None):
    """Records (id, area, bbox) for every id present in ``labels``; ``extra`` columns
    are indexed by label id and copied for the ids present."""
    labels = check_labels(labels)
    ids = np.unique(labels)
    ids = ids[ids > 0]
    area = np.bincount(labels.ravel(), minlength=int(ids.max(initial=0)) + 1)
    slices = ndi.find_objects(labels.astype(np.int64, copy=False))
    bb = np.array(
        [[s[0].start, s[1].start, s[0].stop, s[1].stop] for s in (slices[i - 1] for i in ids)],
        np.int64,
    ).reshape(-1, 4)
    table = {
        "id": ids.astype(np.int64),
        "area": area[ids].astype(np.int64),
        "bbox_row0": bb[:, 0],
        "bbox_col0": bb[:, 1],
        "bbox_row1": bb[:, 2],
        "bbox_col1": bb[:, 3],
    }
    for name, values in (extra or {}).items():
        table[name] = np.asarray(values)[ids]
    return table


def paint_masks(shape, boxes, crops, scores, min_area: int = 0):
    """Paint masks into one label image, highest score on top; drop masks whose visible
    area falls below ``min_area`` (or to zero). Returns (labels, kept indices)."""
    order = np.argsort(scores, kind="stable")  # ascending: the best mask is painted last
    canvas = np.zeros(shape, np.int64)
    for i in order:
        r0, c0, r1, c1 = boxes[i]
        region = canvas[r0:r1, c0:c1]
        region[crops[i]] = i + 1
    visible = np.bincount(canvas.ravel(), minlength=len(boxes) + 1)[1:]
    keep = np.nonzero(visible >= max(min_area, 1))[0]
    lut = np.zeros(len(boxes) + 1, np.uint32)
    lut[keep + 1] = np.arange(1, len(keep) + 1, dtype=np.uint32)
    return lut[canvas], keep


# Mask clean-up. Segment-everything returns parts and wholes of one object, and masks
# a little larger than their object (a halo of what surrounds it). Painted into one
# label image, a whole under its part leaves a thin ring or crescent around the part,
# and a halo stays a ring; either holds the blurred edge between two phases, and
# k-means makes a phase of them.
RING_WIDTH = 6.0  # px: thicker regions are never rings
RING_DEPTH = 0.5  # ... nor regions deeper than this fraction of the mask they surround
RING_COVERED = 0.5  # a whole that keeps less than this fraction of itself is a leftover
RING_ENCLOSE = 0.5  # a mask this much inside another's outline is enclosed by it
RING_HUG = 0.8  # fraction of a ring's pixels next to the mask(s) it surrounds
RING_ORIGIN = 0.95  # a raw mask holding this fraction of a region is where it came from


def region_depth(labels: np.ndarray) -> np.ndarray:
    """Per pixel, 1 + the distance to the nearest pixel of another label (the image
    border is no edge: a mask cut by the border is not thinner for it)."""
    lab = np.asarray(labels)
    edge = np.zeros(lab.shape, bool)
    for axis in (0, 1):
        diff = np.diff(lab, axis=axis) != 0
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        edge[tuple(lo)] |= diff
        edge[tuple(hi)] |= diff
    return ndi.distance_transform_edt(~edge) + 1.0


# A mask's edge band: within EDGE_PX of another label its pixels hold the blurred
# border between two phases (and SAM draws its edges from logits at a quarter of the
# input resolution), so features look inside it and refine_edges redraws it. Masks
# with fewer than INTERIOR_MIN_PX pixels inside the band keep all their pixels.
EDGE_PX = 2
INTERIOR_MIN_PX = 16


def interior_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` with each mask's pixels within ``EDGE_PX`` of another label (the
    background included, the image border not) set to 0, unless that leaves the mask
    fewer than ``INTERIOR_MIN_PX`` pixels."""
    labels = np.asarray(labels)
    inner = np.where(region_depth(labels) > EDGE_PX, labels, 0)
    size = np.bincount(inner.ravel(), minlength=int(labels.max(initial=0)) + 1)
    small = size < INTERIOR_MIN_PX
    small[0] = False
    return np.where(small[labels], labels, inner)


def refine_edges(labels: np.ndarray, image: np.ndarray, band: int = EDGE_PX) -> np.ndarray:
    """Redraw the borders between masks from the image: each mask pixel within
    ``band`` px of another label goes to the mask, among its own and those within
    ``band`` px, whose interior mean colour (pixels deeper than ``EDGE_PX``) is nearest
    to the pixel's (Gaussian-smoothed, sigma 1 px, against noise). Segment-everything
    draws edges from logits at a quarter of the input resolution; the image shows
    where the edge is. Only masks with at least ``INTERIOR_MIN_PX`` interior pixels
    take pixels; background pixels stay background.
    """
    from napari_samphase.core.image.convert import to_rgb_uint8

    lab = check_labels(labels).astype(np.int64, copy=False)
    if band <= 0 or lab.max(initial=0) == 0:
        return lab
    rgb = to_rgb_uint8(image).astype(np.float32)
    if rgb.shape[:2] != lab.shape:
        raise InputError(f"image shape {rgb.shape[:2]} does not match labels {lab.shape}")
    smooth = np.stack([ndi.gaussian_filter(rgb[..., c], 1.0) for c in range(3)], -1)
    n = int(lab.max()) + 1
    depth = region_depth(lab)
    inner = np.where(depth > EDGE_PX, lab, 0).ravel()
    count = np.bincount(inner, minlength=n)
    mean = np.stack(
        [np.bincount(inner, smooth[..., c].ravel(), n) / np.maximum(count, 1) for c in range(3)], 1
    )
    # Only a mask with an inside of its own can take pixels: the colour of a thin or
    # tiny one is its blurred border, which would pull in its neighbours' borders.
    solid = count >= INTERIOR_MIN_PX
    solid[0] = False
    rr, cc = np.nonzero((lab > 0) & (depth <= band))  # only the border band can move
    colour = smooth[rr, cc]
    own = lab[rr, cc]
    take = own.copy()
    best = ((colour - mean[own]) ** 2).sum(-1)
    h, w = lab.shape
    for dr in range(-band, band + 1):
        for dc in range(-band, band + 1):
            if (dr, dc) == (0, 0) or dr * dr + dc * dc > band * band:
                continue
            other = lab[np.clip(rr + dr, 0, h - 1), np.clip(cc + dc, 0, w - 1)]
            cost = ((colour - mean[other]) ** 2).sum(-1)
            better = solid[other] & (cost < best)
            take[better] = other[better]
            best[better] = cost[better]
    out = lab.copy()
    out[rr, cc] = take
    return out


def _origin(region: np.ndarray, offset, masks, boxes):
    """(row0, col0), crop of the raw mask a visible region came from: the smallest
    one holding it (a whole under the region's own mask holds it too, but is
    larger); the region itself without raw masks."""
    rr, cc = np.nonzero(region)
    rr, cc = rr + offset[0], cc + offset[1]
    best = ((offset[0], offset[1]), region)
    if boxes is None:
        return best
    inside = (
        (boxes[:, 0] <= rr.min())
        & (boxes[:, 1] <= cc.min())
        & (boxes[:, 2] > rr.max())
        & (boxes[:, 3] > cc.max())
    )
    size = None
    for k in np.nonzero(inside)[0]:
        (r0, c0, _, _), crop = masks[k]
        if crop[rr - r0, cc - c0].mean() >= RING_ORIGIN and (size is None or crop.sum() < size):
            best, size = ((r0, c0), crop), crop.sum()
    return best


def find_rings(
    labels: np.ndarray, masks: list | None = None, ring_width: float = RING_WIDTH
) -> dict[int, tuple[int, ...]]:
    """Masks of ``labels`` that are thin rings around other masks, not objects.

    A mask's depth is the largest distance from one of its pixels to its edge. A mask
    is a ring around mask B when it is thin, at most ``ring_width`` px thick (twice
    its depth) or under ``RING_DEPTH`` of B's depth, when ``RING_HUG`` of its pixels
    lie within its own thickness of B, and when it is

    * the rest of a whole: its raw mask kept less than ``RING_COVERED`` of itself and
      holds at least ``RING_ENCLOSE`` of B, a part painted over it (the crescent or
      ring a whole leaves around its part; its pixels go to its parts); or
    * a halo: the hole-filled outline of its raw mask holds ``RING_ENCLOSE`` of B (its
      pixels go to their nearest neighbour).

    ``masks``: the overlapping ``((row0, col0, row1, col1), crop)`` masks the labels
    were painted from (``Segmentation.masks``); a region's raw mask is the smallest
    one holding it. Without them a region is its own raw mask, so only closed rings
    are found. A thin mask between others that it does not enclose (a grain
    boundary, a membrane), a small particle beside a large one, and a shell about as
    thick as its core are never rings.

    Returns {ring id: ids of the parts that take its pixels, or () for a halo, whose
    pixels go to their nearest neighbour}.
    """
    labels = check_labels(labels)
    lab = labels.astype(np.int64, copy=False)
    n = int(lab.max(initial=0))
    if n == 0:
        return {}
    area = np.bincount(lab.ravel(), minlength=n + 1)
    depth = np.zeros(n + 1)
    np.maximum.at(depth, lab.ravel(), region_depth(lab).ravel())
    depth[0] = 0
    absolute = 2 * depth <= ring_width
    # cheap pre-filter: a mask thicker than RING_DEPTH of the deepest one is no ring
    candidates = absolute | (depth <= RING_DEPTH * depth.max())
    candidates[0] = False
    boxes = np.array([b for b, _ in masks], np.int64).reshape(-1, 4) if masks else None
    slices = ndi.find_objects(lab)
    h, w = lab.shape
    rings = {}
    for i in np.nonzero(candidates & (area > 0))[0]:
        sl = slices[i - 1]
        (o0, p0), crop = _origin(lab[sl] == i, (sl[0].start, sl[1].start), masks, boxes)
        under = lab[o0 : o0 + crop.shape[0], p0 : p0 + crop.shape[1]]
        if area[i] < RING_COVERED * crop.sum():
            held = np.bincount(under[crop], minlength=n + 1)
            kind = "rest"
        else:
            held = np.bincount(under[ndi.binary_fill_holes(crop)], minlength=n + 1)
            kind = "halo"
        around = np.nonzero(held >= RING_ENCLOSE * area)[0]
        around = around[(around > 0) & (around != i) & (area[around] > 0)]
        around = around[absolute[i] | (depth[i] <= RING_DEPTH * depth[around])]
        if len(around) == 0:
            continue
        reach = int(np.ceil(2 * depth[i])) + 1
        r0, r1 = max(sl[0].start - reach, 0), min(sl[0].stop + reach, h)
        c0, c1 = max(sl[1].start - reach, 0), min(sl[1].stop + reach, w)
        win = lab[r0:r1, c0:c1]
        me = win == i
        if kind == "rest":  # the rest of a whole hugs its parts, together
            if (ndi.distance_transform_edt(~np.isin(win, around))[me] <= reach).mean() >= RING_HUG:
                rings[int(i)] = tuple(int(b) for b in around)
            continue
        for b in around:
            if (ndi.distance_transform_edt(win != b)[me] <= reach).mean() >= RING_HUG:
                rings[int(i)] = ()
                break
    return rings


MATRIX_SURROUNDS = 0.5  # the matrix mask encloses more than this share of the others


def surrounding_mask(labels: np.ndarray) -> int:
    """The mask that surrounds the others: segment-everything's mask of the matrix
    particles sit in. It is the largest mask whose hole-filled outline holds at least
    ``RING_ENCLOSE`` of each of at least two masks and of more than
    ``MATRIX_SURROUNDS`` of the masks that do not touch the image border (those can
    sit in no hole). 0 when no mask does."""
    lab = check_labels(labels).astype(np.int64, copy=False)
    n = int(lab.max(initial=0))
    area = np.bincount(lab.ravel(), minlength=n + 1)
    edge = np.unique(np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]]))
    inner = np.ones(n + 1, bool)
    inner[edge] = False
    inner &= area > 0
    inner[0] = False
    for i in np.argsort(-area[1:], kind="stable")[:3] + 1:
        others = inner.copy()
        others[i] = False
        if area[i] == 0 or others.sum() < 2:
            continue
        held = np.bincount(lab[ndi.binary_fill_holes(lab == i)], minlength=n + 1)
        enclosed = others & (held >= RING_ENCLOSE * area)
        if enclosed.sum() >= 2 and enclosed.sum() > MATRIX_SURROUNDS * others.sum():
            return int(i)
    return 0


def majority_value(labels: np.ndarray, values: np.ndarray):
    """(ids present in ``labels``, each pixel's index into them, the value most of each
    id's pixels have in ``values``); ties go to the lower value."""
    ids, inv = np.unique(labels, return_inverse=True)
    vals, vinv = np.unique(values, return_inverse=True)
    inv, vinv = inv.reshape(labels.shape), vinv.reshape(labels.shape)
    votes = np.bincount((inv * len(vals) + vinv).ravel(), minlength=len(ids) * len(vals)).reshape(
        len(ids), len(vals)
    )
    return ids, inv, vals[votes.argmax(1)]


def renumber(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids made 1..n in their order. Returns (uint32 labels, old id of each new id;
    index 0 = background)."""
    lab = np.asarray(labels).astype(np.int64, copy=False)
    n = int(lab.max(initial=0))
    present = np.zeros(n + 1, bool)
    present[np.unique(lab)] = True
    present[0] = True
    old = np.nonzero(present)[0]
    lut = np.zeros(n + 1, np.uint32)
    lut[old] = np.arange(len(old), dtype=np.uint32)
    return lut[lab], old


def drop_rings(labels: np.ndarray, rings: dict) -> np.ndarray:
    """Remove the masks ``rings`` (as :func:`find_rings` returns them): a pixel of a
    whole's rest goes to the nearest of its parts, any other pixel to the nearest pixel
    kept (a mask or the background). Ids are not renumbered."""
    lab = check_labels(labels).astype(np.int64, copy=True)
    if not rings:
        return lab
    slices = ndi.find_objects(lab)

    def box(i):  # None for an id with no pixels
        return slices[i - 1] if 0 < i <= len(slices) else None

    gone = np.zeros(max(len(slices), *rings) + 1, bool)
    gone[list(rings)] = True
    for i, parts in rings.items():
        parts = [b for b in parts if not gone[b] and box(b) is not None]
        if not parts or box(i) is None:
            continue
        # the window that holds the ring and its parts
        sls = [box(j) for j in (i, *parts)]
        r0, r1 = min(s[0].start for s in sls), max(s[0].stop for s in sls)
        c0, c1 = min(s[1].start for s in sls), max(s[1].stop for s in sls)
        win = lab[r0:r1, c0:c1]
        me = win == i
        _, (ri, ci) = ndi.distance_transform_edt(~np.isin(win, parts), return_indices=True)
        win[me] = win[ri[me], ci[me]]
    drop = gone[lab]
    if drop.all():  # nothing left to take the pixels
        return np.zeros_like(lab)
    if drop.any():
        _, (ri, ci) = ndi.distance_transform_edt(drop, return_indices=True)
        lab = lab[ri, ci]
    return lab


def _shrunk(before: np.ndarray, after: np.ndarray) -> dict[int, tuple[int, ...]]:
    """Masks that kept less than ``RING_COVERED`` of their pixels from ``before`` to
    ``after`` -> the mask that took most of them."""
    n = int(before.max(initial=0)) + 1
    kept = np.bincount(before[after == before], minlength=n)
    had = np.bincount(before.ravel(), minlength=n)
    slices = ndi.find_objects(before)
    out = {}
    for i in np.nonzero((had > 0) & (kept < RING_COVERED * had))[0]:
        if i == 0:
            continue
        sl = slices[i - 1]
        taken = after[sl][(before[sl] == i) & (after[sl] != i)]
        taken = taken[taken > 0]
        if len(taken):
            out[int(i)] = (int(np.bincount(taken).argmax()),)
    return out


def clean_segmentation(
    seg: Segmentation,
    image: np.ndarray | None = None,
    ring_width: float = RING_WIDTH,
    edge_band: int = EDGE_PX,
    min_area: int = 0,
    progress: ProgressCallback | None = None,
) -> Segmentation:
    """Segment-everything's masks cleaned up for phases.

    1. Thin rings that wholes leave around their parts, and halos around masks
       (:func:`find_rings`, with ``seg.masks`` when present), are removed
       (:func:`drop_rings`).
    2. With ``image``, the borders between masks are redrawn from it
       (:func:`refine_edges`); a mask that loses most of its pixels so goes to the
       mask that took most of them, and rings left are removed as in 1.
    3. Masks left with fewer than ``min_area`` pixels give them to their neighbours.

    Ids become 1..n and the table's per-mask columns follow their masks;
    ``seg.masks`` (the raw, overlapping masks) is kept as is. Returns ``seg`` itself
    when there is nothing to do.

    ring_width: the thickest ring removed, in px (0: none).
    edge_band: how far from a border pixels may move, in px (0: no redrawing).
    min_area: smallest mask kept, in px.
    progress: ``(done, total, message)`` after each step (seconds each on large
    images); it may raise ``Cancelled`` between steps.
    """
    redraw = image is not None and edge_band > 0
    total = 1 + 2 * redraw + (min_area > 0)
    done = 0

    def step(name):
        nonlocal done
        done += 1
        report(progress, done, total, f"mask clean-up: {name}")

    def without_rings(labels):
        rings = find_rings(labels, seg.masks, ring_width) if ring_width > 0 else {}
        return drop_rings(labels, rings)

    labels = without_rings(seg.labels)
    step("rings")
    if redraw:
        before = labels
        labels = refine_edges(before, image, edge_band)
        step("borders")
        # a mask whose pixels the image gave to a neighbour was a rim of that one
        labels = without_rings(drop_rings(labels, _shrunk(before, labels)))
        step("rims")
    if min_area > 0:
        area = np.bincount(labels.ravel())
        small = np.nonzero((area > 0) & (area < min_area))[0]
        labels = drop_rings(labels, {int(i): () for i in small if i > 0})
        step("small masks")
    if np.array_equal(labels, seg.labels):
        return seg
    labels, old = renumber(labels)
    n_old = int(np.asarray(seg.labels).max(initial=0))
    extra = {}
    for name, values in seg.table.items():
        if name in COLUMNS[:6]:  # id, area, bbox: recomputed from the new labels
            continue
        values = np.asarray(values)
        by_id = np.zeros(n_old + 1, values.dtype)
        by_id[seg.table["id"]] = values
        extra[name] = by_id[old]
    return Segmentation(labels, table_from_labels(labels, extra), seg.proposer, seg.masks)
