"""Weight-free particle masks by multi-Otsu thresholds."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.image.convert import check_image, to_gray_float
from napari_samphase.core.image.labels import Segmentation
from napari_samphase.core.progress import report
from napari_samphase.core.proposers.base import finish, largest_region


@dataclass
class ThresholdProposer:
    """Weight-free particle masks: flatten slow illumination, split the intensities
    into ``levels`` classes (multi-Otsu), take the class holding the largest connected
    region as the background (the percolating matrix) and make every connected region
    of the other classes a mask. Background pixels stay unlabelled, like the
    unsegmented matrix of a SAM run."""

    levels: int = 2
    sigma: float = 1.0
    flatten: float = 30.0  # sigma of the illumination estimate, pixels (0: off)
    min_area: int = 0
    name: str = "threshold"

    def propose(self, image, progress=None) -> Segmentation:
        from scipy import ndimage as ndi
        from skimage.filters import threshold_multiotsu
        from skimage.measure import label

        gray = to_gray_float(check_image(image)).astype(np.float64)
        report(progress, 0, 2, "threshold")
        g = ndi.gaussian_filter(gray, self.sigma) if self.sigma > 0 else gray
        if self.flatten > 0:
            g = g - ndi.gaussian_filter(g, self.flatten)
        try:
            classes = np.digitize(g, threshold_multiotsu(g, self.levels))
        except ValueError:  # flat image: one class, no objects
            classes = np.zeros(g.shape, int)
        labels = np.zeros(g.shape, np.int64)
        biggest, background = -1, 0
        for c in range(self.levels):
            cc = label(classes == c, connectivity=1)
            if largest_region(cc) > biggest:
                biggest, background = largest_region(cc), c
            labels = np.where(cc > 0, cc + labels.max(), labels)
        labels[classes == background] = 0
        report(progress, 2, 2, "threshold")
        return finish(labels, self.min_area, self.name)
