"""Mask proposers behind one interface, chosen by name (registry, no if/else chain).

``sam`` needs a SAM checkpoint; ``watershed``, ``threshold`` and ``superpixels``
need no weights and no GPU. The
SAM path never falls back to the weight-free one silently: the user picks it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .image import check_image, to_gray_float
from .masks import Segmentation, table_from_labels
from .progress import ProgressCallback, report


class Proposer(Protocol):
    name: str

    def propose(
        self, image: np.ndarray, progress: ProgressCallback | None = None
    ) -> Segmentation: ...


@dataclass
class SamProposer:
    """Segment everything with SAM (fast generator, one embedding per image)."""

    model: str = "vit_b"
    checkpoint: str | None = None
    device: str = "auto"
    points_per_side: int = 32
    pred_iou_thresh: float | None = None  # None: the model's registered default
    stability_thresh: float | None = None
    box_nms_thresh: float = 0.7
    min_area: int = 0
    skip_covered: bool = False
    fetch: bool = True
    session: object | None = field(default=None, repr=False)
    name: str = "sam"

    def get_session(self, progress: ProgressCallback | None = None):
        if self.session is None:
            from .session import SamSession

            self.session = SamSession.from_name(
                self.model, self.checkpoint, self.device, fetch=self.fetch, progress=progress
            )
        return self.session

    def propose(self, image, progress=None) -> Segmentation:
        session = self.get_session()
        session.set_image(check_image(image), progress=_stage(progress, "embedding", 0, 0.3))
        return session.segment_everything(
            points_per_side=self.points_per_side,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_thresh=self.stability_thresh,
            box_nms_thresh=self.box_nms_thresh,
            min_area=self.min_area,
            skip_covered=self.skip_covered,
            progress=_stage(progress, "segment everything", 0.3, 1.0),
        )


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
        return _segmentation(sp, self.min_area, self.name)


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
            if _largest(cc) > biggest:
                biggest, background = _largest(cc), c
            labels = np.where(cc > 0, cc + labels.max(), labels)
        labels[classes == background] = 0
        report(progress, 2, 2, "threshold")
        return _segmentation(labels, self.min_area, self.name)


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

        from .errors import InputError

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
                first = "dark" if _largest(bright) >= _largest(dark) else "bright"
                order = [first, {"dark": "bright", "bright": "dark"}[first], "both"]
            else:
                order = [self.objects]
            for objects in order:
                labels = self._flood(edges, dark, bright, objects)
                if _largest(labels) < _largest(label(labels == 0, connectivity=1)):
                    break  # particles do not percolate: a plausible matrix
        report(progress, 3, 3, "watershed")
        return _segmentation(labels, self.min_area, self.name)

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


POLARITIES = ("dark", "bright", "both")


def _segmentation(labels: np.ndarray, min_area: int, name: str) -> Segmentation:
    """Masks under ``min_area`` pixels dropped, ids made 1..n, the per-mask table."""
    from skimage.segmentation import relabel_sequential

    if min_area > 0:
        area = np.bincount(labels.ravel())
        labels = np.where(area[labels] < min_area, 0, labels)
    labels = relabel_sequential(labels)[0].astype(np.uint32)
    return Segmentation(labels, table_from_labels(labels), name)


def _largest(components: np.ndarray) -> int:
    """Pixels in the largest labelled region (labels > 0)."""
    return int(np.bincount(components.ravel())[1:].max(initial=0))


PROPOSERS: dict[str, type] = {
    "sam": SamProposer,
    "superpixels": SuperpixelProposer,
    "threshold": ThresholdProposer,
    "watershed": WatershedProposer,
}


def make_proposer(name: str, **options) -> Proposer:
    from .errors import InputError

    try:
        cls = PROPOSERS[name]
    except KeyError:
        raise InputError(
            f"unknown proposer {name!r} (choose from {', '.join(PROPOSERS)})"
        ) from None
    fields = cls.__dataclass_fields__
    unknown = set(options) - set(fields)
    if unknown:
        raise InputError(f"proposer {name!r} has no option(s) {', '.join(sorted(unknown))}")
    return cls(**options)


def segment(
    image, proposer: str = "sam", progress: ProgressCallback | None = None, **options
) -> Segmentation:
    """Instance masks of ``image`` from the named proposer."""
    return make_proposer(proposer, **options).propose(image, progress=progress)


def _stage(progress, message, lo, hi):
    """Map a sub-step's (done, total) onto [lo, hi] of an overall 0..1000 scale."""
    if progress is None:
        return None

    def cb(done, total, msg=""):
        frac = lo + (hi - lo) * (done / max(total, 1))
        progress(int(1000 * frac), 1000, msg or message)

    return cb
