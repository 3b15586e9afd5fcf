"""Clicks and boxes to SAM: the ``"<image> prompts"`` Points layer (positive and
negative clicks), the ``"<image> boxes"`` Shapes layer (rectangles: SAM box prompts),
the ``"<image> preview"`` of SAM's mask for them, and committing it as a new mask.

A mixin of :class:`~napari_samphase._napari.phase_mapper.PhaseMapper`; main thread.
"""

from __future__ import annotations

import numpy as np

from napari_samphase._napari.layers import NEGATIVE, POSITIVE, rectangle_to_xyxy
from napari_samphase.core.errors import InputError, SamphaseError

# Shapes data events that end an edit (drawing emits "adding" on press, "added" on
# release; moving a vertex "changing" then "changed").
FINAL_ACTIONS = ("added", "changed", "removed")
MIN_BOX_PX = 2.0  # a click in rectangle mode leaves a rectangle of a fraction of a pixel


class PromptsMixin:
    # -- layers --------------------------------------------------------------------------
    def prompts_layer(self):
        """The current image's Points layer of clicks (``features["positive"]``)."""
        layer = self._layer("prompts")
        if layer is None:
            layer = self.viewer.add_points(
                np.zeros((0, 2)),
                name=self.layer_name("prompts"),
                size=max(4, self._shape()[0] // 80),
                face_color=POSITIVE,
                border_color="white",
                features={"positive": np.zeros(0, bool)},
                **self._transform(),
            )
            layer.mode = "pan_zoom"
        return layer

    def boxes_layer(self):
        """The current image's Shapes layer of box prompts: the last rectangle drawn (a
        shape's bounding box) prompts SAM together with the clicks."""
        layer = self._layer("boxes")
        if layer is None:
            layer = self.viewer.add_shapes(
                name=self.layer_name("boxes"),
                shape_type="rectangle",
                edge_color=POSITIVE,
                face_color="transparent",
                edge_width=max(1, self._shape()[0] // 200),
                **self._transform(),
            )
            layer.current_edge_color = POSITIVE
            layer.current_face_color = "transparent"
            layer.mode = "pan_zoom"
        if layer not in self._watched:
            layer.events.data.connect(self._boxes_edited)
            self._watched.add(layer)
        return layer

    def _boxes_edited(self, event=None) -> None:
        action = str(getattr(event, "action", "changed"))
        if self._quiet or action.rsplit(".", 1)[-1].lower() not in FINAL_ACTIONS:
            return
        if event is not None and event.source is not self._layer("boxes"):
            return  # another image's boxes: its preview follows when it is current
        if self.auto_preview:
            try:
                self.update_preview()
            except SamphaseError as exc:
                self.status.emit(f"error: {exc}")
        self.boxes_changed.emit()

    def box_prompt(self) -> np.ndarray | None:
        """SAM's ``(x0, y0, x1, y1)`` of the last shape in the boxes layer (None: none,
        or only specks of a click in rectangle mode)."""
        layer = self._layer("boxes")
        if layer is None:
            return None
        for corners in reversed(layer.data):
            xyxy = rectangle_to_xyxy(corners)
            if min(xyxy[2] - xyxy[0], xyxy[3] - xyxy[1]) >= MIN_BOX_PX:
                return xyxy
        return None

    # -- prompts -------------------------------------------------------------------------
    def add_prompt(self, row: float, col: float, positive: bool = True, preview: bool = True):
        """Add a point prompt at image pixel (row, col) (data coordinates; snapped to
        the pixel) and, with ``preview``, update the preview (re-embedding first if the
        image changed). ``preview=False`` lets the caller re-embed in a worker first."""
        self._require_session()
        r, c = self._pixel(row, col)
        layer = self.prompts_layer()
        layer.selected_data = set()  # the current colour must not repaint a selection
        layer.feature_defaults = {"positive": positive}
        layer.current_face_color = POSITIVE if positive else NEGATIVE
        layer.add([[r, c]])
        return self.update_preview() if preview else None

    def add_box(self, row0: float, col0: float, row1: float, col1: float, preview=True):
        """Add a box prompt from corner (row0, col0) to (row1, col1) (data coordinates
        of the pixel centres at its corners, both included) and, with ``preview``,
        update the preview.

        Parameters
        ----------
        row0, col0, row1, col1 : float
            Opposite corners, in the image layer's data coordinates.
        preview : bool
            Run SAM on the prompts now (re-embedding first if the image changed).
        """
        self._require_session()
        (r0, r1), (c0, c1) = sorted((row0, row1)), sorted((col0, col1))
        corners = np.array([[r0, c0], [r1 + 1, c1 + 1]]) - 0.5  # pixel edges
        self._quiet = True
        try:
            self.boxes_layer().add_rectangles(corners, edge_color=POSITIVE)
        finally:
            self._quiet = False
        return self.update_preview() if preview else None

    def update_preview(self):
        """Run SAM on the current prompts (clicks and the last box); the mask goes to
        the preview layer. The embedding is of the current image: recomputed here if
        the image changed."""
        points = self._layer("prompts")
        n_points = 0 if points is None else len(points.data)
        box = self.box_prompt()
        preview = self._labels_layer("preview", opacity=0.6)
        if n_points == 0 and box is None:
            preview.data = np.zeros(self._shape(), np.uint8)
            return None
        self._require_session()
        self.ensure_embedding()
        coords, labels = np.zeros((0, 2)), np.zeros(0, int)
        if n_points:
            coords = np.asarray(points.data)[:, -2:]
            labels = np.asarray(points.features["positive"], bool).astype(int)
        result = self.session.predict(coords, labels, box=box)
        new = result.mask.astype(np.uint8)
        changed = np.nonzero(np.asarray(preview.data) != new)
        if len(changed[0]):  # only the changed pixels: a partial texture update
            preview.data_setitem(changed, new[changed])
        self.status.emit(f"preview: {int(result.mask.sum())} px, score {result.score:.2f}")
        return result

    def _clear_prompt_layers(self) -> None:
        """Empty the current image's clicks, boxes and preview (those that exist)."""
        prompts, boxes, preview = (self._layer(k) for k in ("prompts", "boxes", "preview"))
        if prompts is not None and len(prompts.data):
            prompts.data = np.zeros((0, 2))
            prompts.features = {"positive": np.zeros(0, bool)}
        if boxes is not None and len(boxes.data):
            self._quiet = True
            try:
                boxes.data = []
            finally:
                self._quiet = False
        if preview is not None and np.asarray(preview.data).any():
            preview.data = np.zeros_like(np.asarray(preview.data))

    def clear_prompts(self) -> None:
        """Remove the clicks and boxes of the current image and its preview."""
        self.prompts_layer()  # the layer a user clicks into next
        self._clear_prompt_layers()

    def commit(self) -> int:
        """Add the preview as a new mask (on unlabelled pixels) and clear the prompts."""
        preview = self._layer("preview")
        if preview is None or not np.asarray(preview.data).any():
            raise InputError("no object to commit: click on the image first")
        masks = self.masks_layer()
        data = np.asarray(masks.data)
        new_id = int(data.max(initial=0)) + 1
        sel = (np.asarray(preview.data) > 0) & (data == 0)
        if not sel.any():
            raise InputError("the object lies on existing masks only: nothing to commit")
        self._write_masks(new_id, np.nonzero(sel))  # through the history: Ctrl+Z undoes it
        state = self.state
        state.made = {**state.made, **self._model_fields(), "interactive_prompts": True}
        self._refresh_features()
        self._stamp_provenance()
        self._notify("masks")
        self.clear_prompts()
        self.status.emit(f"committed mask {new_id} ({int(sel.sum())} px)")
        return new_id
