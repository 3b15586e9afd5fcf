"""Instance label images and their per-mask records (any proposer's output)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.errors import InputError

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
