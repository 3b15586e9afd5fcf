"""Same-phase query: a pixel -> its mask -> its phase -> every mask of that phase.

Everything is precomputed once, so a query is two array lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.image.labels import table_from_labels


def phase_lut(mask_ids, phase_of_mask, max_id: int) -> np.ndarray:
    """mask id -> phase as an array indexed by id (0..max_id); unlisted ids get 0."""
    lut = np.zeros(int(max_id) + 1, np.int64)
    lut[np.asarray(mask_ids, np.int64)] = np.asarray(phase_of_mask)
    return lut


@dataclass
class QueryResult:
    mask_id: int  # 0: background
    phase: int  # 0: background
    mask_ids: np.ndarray  # all masks of that phase (empty for background)
    bboxes: np.ndarray  # k x 4 (row0, col0, row1, col1), end-exclusive

    @property
    def is_background(self) -> bool:
        return self.mask_id == 0

    def describe(self) -> str:
        if self.is_background:
            return "background: no mask here"
        return f"mask {self.mask_id}: phase {self.phase}, {len(self.mask_ids)} components"


class PhaseQuery:
    def __init__(self, labels: np.ndarray, mask_ids: np.ndarray, phase_of_mask: np.ndarray):
        self.labels = np.asarray(labels)
        table = table_from_labels(self.labels)
        n = int(self.labels.max(initial=0)) + 1
        self.phase_lut = phase_lut(mask_ids, phase_of_mask, n - 1)
        boxes = np.zeros((n, 4), np.int64)
        boxes[table["id"]] = np.stack(
            [table["bbox_row0"], table["bbox_col0"], table["bbox_row1"], table["bbox_col1"]], 1
        )
        present = np.zeros(n, bool)
        present[table["id"]] = True
        self._members: dict[int, np.ndarray] = {}
        self._boxes: dict[int, np.ndarray] = {}
        for p in np.unique(self.phase_lut[present]):
            ids = np.nonzero(present & (self.phase_lut == p))[0]
            self._members[int(p)] = ids
            self._boxes[int(p)] = boxes[ids]

    @classmethod
    def from_result(cls, result) -> PhaseQuery:
        return cls(result.labels, result.mask_ids, result.phase_of_mask)

    def phases(self) -> list[int]:
        return sorted(self._members)

    def members(self, phase: int) -> np.ndarray:
        return self._members.get(int(phase), np.zeros(0, np.int64))

    def boxes(self, phase: int) -> np.ndarray:
        return self._boxes.get(int(phase), np.zeros((0, 4), np.int64))

    def __call__(self, row: float, col: float) -> QueryResult:
        r, c = int(np.floor(row)), int(np.floor(col))
        h, w = self.labels.shape
        if not (0 <= r < h and 0 <= c < w):
            return QueryResult(0, 0, np.zeros(0, np.int64), np.zeros((0, 4), np.int64))
        mask_id = int(self.labels[r, c])
        phase = int(self.phase_lut[mask_id]) if mask_id else 0
        if mask_id == 0 or phase == 0:
            return QueryResult(mask_id, 0, np.zeros(0, np.int64), np.zeros((0, 4), np.int64))
        return QueryResult(mask_id, phase, self._members[phase], self._boxes[phase])
