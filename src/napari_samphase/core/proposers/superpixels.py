"""Weight-free masks from merged SLIC superpixels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.image.convert import check_image, to_gray_float
from napari_samphase.core.image.labels import Segmentation
from napari_samphase.core.progress import report
from napari_samphase.core.proposers.base import finish


@dataclass
class SuperpixelProposer:
    """Weight-free masks: SLIC superpixels, adjacent ones merged when their mean
    intensities differ by less than ``merge_thresh`` (region adjacency graph)."""

    n_segments: int | None = None  # default: one per ~150 pixels
    compactness: float = 0.05
    sigma: float = 1.0
    merge_thresh: float = 0.04
    min_area: int = 0
    name: str = "superpixels"

    def propose(self, image, progress=None) -> Segmentation:
        from skimage import graph, segmentation

        gray = to_gray_float(check_image(image))
        report(progress, 0, 3, "superpixels")
        n = self.n_segments or max(64, gray.size // 150)
        sp = segmentation.slic(
            gray,
            n_segments=n,
            compactness=self.compactness,
            sigma=self.sigma,
            channel_axis=None,
            start_label=1,
        )
        report(progress, 1, 3, "merging similar neighbours")
        if self.merge_thresh > 0:
            rag = graph.rag_mean_color(np.repeat(gray[..., None], 3, 2), sp, mode="distance")
            # regions may come back numbered from 0: shift so none is background
            sp = graph.cut_threshold(sp, rag, self.merge_thresh * np.sqrt(3), in_place=True) + 1
        report(progress, 3, 3, "superpixels")
        return finish(sp, self.min_area, self.name)
