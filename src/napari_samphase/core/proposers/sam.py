"""The SAM proposer: segment everything with a SAM model (one embedding per image)."""

from __future__ import annotations

from dataclasses import dataclass, field

from napari_samphase.core.image.convert import check_image
from napari_samphase.core.image.labels import (
    EDGE_PX,
    RING_WIDTH,
    Segmentation,
    clean_segmentation,
)
from napari_samphase.core.progress import ProgressCallback


@dataclass
class SamProposer:
    """Segment everything with SAM (fast generator, one embedding per image).

    ``clean`` (default on) cleans the masks up before anything else sees them
    (:func:`~napari_samphase.core.image.labels.clean_segmentation`): the thin rings
    that segment-everything's wholes leave around their parts, and halos around
    masks, are removed (they hold the blurred edge between two phases and would be
    clustered as a phase of their own), and the borders between masks are redrawn
    from the image (SAM draws them at a quarter of its input resolution).
    ``ring_width``: the thickest ring removed, px; ``edge_band``: how far a border
    may move, px.
    """

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
    clean: bool = True
    ring_width: float = RING_WIDTH
    edge_band: int = EDGE_PX
    session: object | None = field(default=None, repr=False)
    name: str = "sam"

    def get_session(self, progress: ProgressCallback | None = None):
        if self.session is None:
            from napari_samphase.core.sam.session import SamSession

            self.session = SamSession.from_name(
                self.model, self.checkpoint, self.device, fetch=self.fetch, progress=progress
            )
        return self.session

    def propose(self, image, progress=None) -> Segmentation:
        session = self.get_session()
        image = check_image(image)
        session.set_image(image, progress=progress)
        seg = session.segment_everything(
            points_per_side=self.points_per_side,
            pred_iou_thresh=self.pred_iou_thresh,
            stability_thresh=self.stability_thresh,
            box_nms_thresh=self.box_nms_thresh,
            min_area=self.min_area,
            skip_covered=self.skip_covered,
            progress=progress,
        )
        if not self.clean:
            return seg
        return clean_segmentation(
            seg, image, self.ring_width, self.edge_band, self.min_area, progress=progress
        )
