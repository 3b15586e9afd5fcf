"""What every mask proposer shares: the interface and the common ending."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from napari_samphase.core.image.labels import Segmentation, table_from_labels
from napari_samphase.core.progress import ProgressCallback


class Proposer(Protocol):
    name: str

    def propose(
        self, image: np.ndarray, progress: ProgressCallback | None = None
    ) -> Segmentation: ...


def finish(labels: np.ndarray, min_area: int, name: str) -> Segmentation:
    """Masks under ``min_area`` pixels dropped, ids made 1..n, the per-mask table."""
    from skimage.segmentation import relabel_sequential

    if min_area > 0:
        area = np.bincount(labels.ravel())
        labels = np.where(area[labels] < min_area, 0, labels)
    labels = relabel_sequential(labels)[0].astype(np.uint32)
    return Segmentation(labels, table_from_labels(labels), name)


def largest_region(components: np.ndarray) -> int:
    """Pixels in the largest labelled region (labels > 0)."""
    return int(np.bincount(components.ravel())[1:].max(initial=0))
