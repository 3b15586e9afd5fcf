"""Segmenting the whole image into the ``"<image> masks"`` layer: SAM's segment
everything (the decoder once; other thresholds re-filter its outputs) or a weight-free
proposer, with what made the masks kept for provenance.

A mixin of :class:`~napari_samphase._napari.phase_mapper.PhaseMapper`; ``compute_*``
are worker-safe, ``apply_segmentation`` main thread.
"""

from __future__ import annotations

from napari_samphase.core.errors import InputError


class SegmentMixin:
    def compute_everything(
        self,
        progress=None,
        points_per_side=32,
        pred_iou_thresh=None,
        stability_thresh=None,
        min_area=0,
    ):
        """Worker-safe: segment the whole image with the loaded SAM. The decoder runs
        once (``AutomaticMaskGenerator.initialize``); :meth:`compute_regenerate` then
        applies other thresholds without it. Masks are cleaned up as the SAM proposer
        does (rings and halos dropped, borders redrawn from the image)."""
        from napari_samphase.core.sam.amg import AutomaticMaskGenerator

        session = self.ensure_embedding(progress)
        self.generator = AutomaticMaskGenerator(session, points_per_side).initialize(progress)
        self.generator_points = points_per_side
        return self.compute_regenerate(pred_iou_thresh, stability_thresh, min_area, progress)

    def compute_regenerate(
        self, pred_iou_thresh=None, stability_thresh=None, min_area=0, progress=None
    ):
        """Worker-safe: the last segment-everything's masks under other thresholds (None:
        the model's), from the decoder outputs kept by its ``initialize``."""
        from napari_samphase.core.image.labels import clean_segmentation

        gen = self.generator
        if gen is None or gen.session is not self.session or not self.embedding_is_current():
            raise InputError("run segment everything on this image first")
        image_layer = self.image_layer
        seg = gen.generate(pred_iou_thresh, stability_thresh, min_area=min_area, progress=progress)
        seg = clean_segmentation(seg, self.image(), min_area=min_area, progress=progress)
        defaults = self.session.thresholds
        thresholds = {
            "pred_iou_thresh": pred_iou_thresh or defaults.pred_iou_thresh,
            "stability_thresh": stability_thresh or defaults.stability_thresh,
            "points_per_side": self.generator_points,
            "min_area": min_area,
        }
        self._made = (seg, image_layer, {**self._model_fields(), "thresholds": thresholds})
        return seg

    def compute_proposal(self, proposer: str, progress=None, **options):
        """Worker-safe: segment the whole image with a weight-free proposer."""
        from napari_samphase.core.proposers import segment

        image_layer = self.image_layer
        seg = segment(self.image(), proposer, progress=progress, **options)
        self._made = (seg, image_layer, {"proposer": proposer, "proposer_options": options})
        return seg

    def apply_segmentation(self, seg) -> None:
        """Show a core ``Segmentation`` as the current image's masks (one undo step)."""
        made, self._made = self._made, None
        fields = {}
        if made is not None and made[0] is seg:
            if made[1] is not self.image_layer:
                name = getattr(made[1], "name", "?")
                raise InputError(f"these masks are of image {name!r}: choose it and run again")
            fields = made[2]
        self.clear_highlight()
        self._set_box_layers({})  # boxes of the old masks would point at nothing
        self._write_masks(seg.labels)
        state = self.state
        state.fixed, state.result, state.query = {}, None, None
        state.made, state.phase_params = fields, {}
        self._refresh_features(seg.table)
        self._stamp_provenance()
        self._notify("masks")
        self.status.emit(f"{seg.n_masks} masks")

    def _model_fields(self) -> dict:
        """Provenance of the loaded SAM model."""
        session = self.session
        if session is None:
            return {}
        return {"model": session.name, "checkpoint_sha256": session.checkpoint_sha256}
