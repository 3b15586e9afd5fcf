"""Weight-free particle masks by marker-controlled watershed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.convert import check_image, to_gray_float
from napari_samphase.core.image.labels import Segmentation
from napari_samphase.core.progress import report
from napari_samphase.core.proposers.base import finish, largest_region

POLARITIES = ("dark", "bright", "both")


@dataclass
class WatershedProposer:
    """Weight-free particle masks by marker-controlled watershed, scikit-image's
    textbook recipe: smooth and flatten the image and split it into three intensity
    classes (multi-Otsu). One extreme class marks the surrounding matrix, each
    connected region of the other one a particle's core (``objects="dark"`` or
    ``"bright"``; ``"both"``: dark and bright particles on a mid-grey matrix).
    Flooding the gradient image from these markers puts each boundary on the
    strongest edge between a core and the matrix, so the unsure middle intensities
    (rims, halos, shading) go to whichever side the edge says. Matrix pixels stay
    unlabelled.

    ``objects="auto"`` tries the polarities in turn, starting with the matrix as the
    extreme class with the larger connected region, and keeps the first in which the
    matrix, not a particle, is the largest connected region.

    A particle whose core broke into pieces (shading, noise) floods as several
    touching basins; by default each connected region of one polarity is one mask.
    ``split_touching=True`` keeps one mask per core instead, which separates touching
    particles but also splits single ones."""

    sigma: float = 2.0  # smoothing before the classes, pixels
    edge_sigma: float = 1.0  # smoothing of the gradient image, pixels
    flatten: float = 30.0  # sigma of the illumination estimate, pixels (0: off)
    split_touching: bool = False
    objects: str = "auto"  # "auto", "dark", "bright" or "both"
    min_area: int = 0
    name: str = "watershed"

    def propose(self, image, progress=None) -> Segmentation:
        from scipy import ndimage as ndi
        from skimage.filters import sobel, threshold_multiotsu
        from skimage.measure import label

        if self.objects not in ("auto", *POLARITIES):
            raise InputError(f"objects must be auto, {', '.join(POLARITIES)}; not {self.objects!r}")
        gray = to_gray_float(check_image(image)).astype(np.float64)
        report(progress, 0, 3, "markers")
        g = gray - ndi.gaussian_filter(gray, self.flatten) if self.flatten > 0 else gray
        smooth = ndi.gaussian_filter(g, self.sigma) if self.sigma > 0 else g
        labels = np.zeros(gray.shape, np.int64)
        try:
            low, high = threshold_multiotsu(smooth, 3)
        except ValueError:  # flat image: no markers, no objects
            low = high = None
        if low is not None:
            dark = label(smooth < low, connectivity=1)
            bright = label(smooth > high, connectivity=1)
            edges = sobel(ndi.gaussian_filter(g, self.edge_sigma) if self.edge_sigma > 0 else g)
            report(progress, 1, 3, "flooding")
            if self.objects == "auto":
                first = "dark" if largest_region(bright) >= largest_region(dark) else "bright"
                order = [first, {"dark": "bright", "bright": "dark"}[first], "both"]
            else:
                order = [self.objects]
            for objects in order:
                labels = self._flood(edges, dark, bright, objects)
                if largest_region(labels) < largest_region(label(labels == 0, connectivity=1)):
                    break  # particles do not percolate: a plausible matrix
        report(progress, 3, 3, "watershed")
        return finish(labels, self.min_area, self.name)

    def _flood(self, edges, dark, bright, objects):
        from skimage.measure import label
        from skimage.segmentation import watershed

        n_dark = int(dark.max())
        if objects == "dark":
            cores, matrix = dark, bright > 0
        elif objects == "bright":
            cores, matrix = bright, dark > 0
        else:  # both: bright cores numbered after the dark ones
            cores = np.where(bright > 0, bright + n_dark, dark)
            matrix = (dark == 0) & (bright == 0)
        markers = cores.astype(np.int64)
        sea = int(markers.max()) + 1
        markers[matrix] = sea
        labels = watershed(edges, markers)
        labels[labels == sea] = 0
        if self.split_touching:
            return labels
        # touching basins of one polarity are one particle
        split = n_dark if objects == "both" else int(markers.max())
        first = label((labels > 0) & (labels <= split), connectivity=1)
        second = label(labels > split, connectivity=1)
        return np.where(second > 0, second + first.max(), first)
