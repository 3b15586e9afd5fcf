"""Phases on layers: clustering the masks (or pixels) into ``"<image> phases"``, the
same-phase highlight with one Shapes layer of bounding boxes per phase, and hand
assignment of a mask to a phase.

A mixin of :class:`~napari_samphase._napari.phase_mapper.PhaseMapper`; ``compute_*``
are worker-safe, the rest main thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from napari_samphase._napari.layers import phase_boxes_name, pixel_of
from napari_samphase.core.errors import InputError
from napari_samphase.core.outputs.render import phase_color


@dataclass
class PhaseRun:
    """A clustering and what the viewer needs to show it: the same-phase index and one
    Shapes layer of bounding boxes per phase, not yet in a viewer; ``image`` the layer
    it was computed on, ``params`` how (features, K, seed, mode: provenance)."""

    result: object  # core.phases.PhaseResult
    query: object  # core.query.PhaseQuery
    boxes: dict  # phase -> napari Shapes layer
    image: object = None  # the napari Image layer
    params: dict = field(default_factory=dict)

    @classmethod
    def build(cls, result, image_name: str = "", image=None, params=None) -> PhaseRun:
        """Safe in a worker: tessellating thousands of rectangles must not block the GUI."""
        from napari.layers import Shapes

        from napari_samphase.core.phases.query import PhaseQuery

        query = PhaseQuery.from_result(result)
        width = max(1, result.labels.shape[0] // 400)
        boxes = {}
        for p in map(int, query.phases()):
            bb = query.boxes(p).astype(float)
            rects = np.stack([bb[:, [0, 1]], bb[:, [0, 3]], bb[:, [2, 3]], bb[:, [2, 1]]], 1)
            boxes[p] = Shapes(
                list(rects),
                shape_type="rectangle",
                name=phase_boxes_name(image_name, p),
                face_color="transparent",
                edge_color=np.array([*phase_color(p), 1.0]),
                edge_width=width,
                opacity=0.0,  # shown by the same-phase highlight
            )
        return cls(result, query, boxes, image, dict(params or {}))


class PhasesMixin:
    # -- compute -------------------------------------------------------------------------
    def compute_phases(
        self, k=3, features="default", background="class", seed=0, progress=None, mode="masks"
    ):
        """Worker-safe: find the phases of the current image. Returns a ``PhaseRun``: the
        core result and the same-phase box layers, built here because tessellating
        thousands of rectangles would block the GUI.

        mode: "masks" clusters the masks currently in the masks layer (edits and hand
        assignments included); "pixels", "intensity" or "auto" go through
        :func:`core.phases.modes.map_phases` ("auto" clusters the masks layer as its
        masks candidate and keeps the best-scoring map). Feature sets with the SAM
        embedding use (and if needed compute) the current image's embedding."""
        from napari_samphase.core.image.labels import prompt_points
        from napari_samphase.core.phases.clustering import find_phases
        from napari_samphase.core.phases.features import embedding_for, needs_embedding

        image_layer = self.image_layer
        name = "" if image_layer is None else image_layer.name
        layer = self._layer("masks")
        if layer is None and mode == "masks":
            raise InputError("no masks yet: run segment everything or commit objects first")
        if self.session is not None and needs_embedding(features):
            self.ensure_embedding(progress)
        emb = embedding_for(features, self.session)
        params = {"features": features, "k_requested": k, "seed": seed, "phase_mode": mode,
                  "background": background}  # fmt: skip
        if mode != "masks":
            result = self._map_phases(layer, k, features, background, seed, emb, mode, progress)
            return PhaseRun.build(result, name, image_layer, params)
        labels = np.asarray(layer.data)
        present = set(np.unique(labels).tolist())
        fixed = {m: p for m, p in self.fixed.items() if m in present}  # edited away: dropped
        feats = layer.features  # stale after a brush edit: then no prompt points
        points = prompt_points(feats) if len(feats) == len(present - {0}) else None
        result = find_phases(
            self.image(),
            labels,
            k=k,
            features=features,
            background=background,
            fixed=fixed,
            points=points,
            embedding=emb,
            seed=seed,
        )
        return PhaseRun.build(result, name, image_layer, params)

    def _map_phases(self, layer, k, features, background, seed, emb, mode, progress):
        from napari_samphase.core.image.labels import Segmentation, table_from_labels
        from napari_samphase.core.phases.modes import map_phases

        options = {}
        if mode == "auto" and layer is not None and np.asarray(layer.data).any():
            labels = np.asarray(layer.data)
            seg = Segmentation(labels, table_from_labels(labels))
            options = {"segmentation": seg, "embedding": emb, "features": features,
                       "background": background}  # fmt: skip
        return map_phases(self.image(), k, mode=mode, seed=seed, progress=progress, **options)

    # -- show ----------------------------------------------------------------------------
    def apply_phases(self, run) -> None:
        """Show a ``PhaseRun`` (or a bare core ``PhaseResult``) on layers. Main thread."""
        from napari.utils.colormaps import DirectLabelColormap

        if not isinstance(run, PhaseRun):
            run = PhaseRun.build(run, self.image_layer.name, self.image_layer)
        if run.image is not None and run.image is not self.image_layer:
            name = getattr(run.image, "name", "?")
            raise InputError(f"these phases are of image {name!r}: choose it and run again")
        result = run.result
        masks = self._layer("masks")
        if masks is None or not np.array_equal(np.asarray(masks.data), result.labels):
            # a pixel mode's components (or masks the clustering added) become the masks
            self._write_masks(result.labels)
        state = self.state
        state.result, state.query, state.fixed = result, run.query, dict(result.fixed)
        state.phase_params = {**run.params, "k": int(getattr(result, "k", result.n_phases))}
        if getattr(result, "mode", ""):
            state.phase_params["phase_mode"] = result.mode  # what "auto" chose
        self.clear_highlight()
        colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
        colors.update({p: (*phase_color(p), 1.0) for p in range(1, result.n_phases + 1)})
        layer = self._layer("phases")
        if layer is None:
            layer = self.viewer.add_labels(
                result.phase_labels,
                name=self.layer_name("phases"),
                opacity=0.55,
                **self._transform(),
            )
        else:
            layer.data = result.phase_labels
            self._align(layer)
        layer.colormap = DirectLabelColormap(color_dict=colors)
        layer.show_selected_label = False
        self._set_box_layers(run.boxes)
        # Adding layers made the last box layer active: its controls would repaint on
        # every highlight. The phase layer is the one a user inspects next.
        self.viewer.layers.selection.active = layer
        self._refresh_features()
        state.table = self.phase_table()
        self._stamp_provenance()
        self.table_changed.emit(state.table)
        self._notify("phases", run)
        self.status.emit(f"{result.n_phases} phases over {len(result.mask_ids)} masks")

    def _set_box_layers(self, boxes: dict) -> None:
        state = self.state
        for old in state.boxes.values():
            if old in self.viewer.layers:
                self.viewer.layers.remove(old)
        state.boxes = boxes
        for layer in boxes.values():
            self.viewer.add_layer(self._align(layer))
        state.shown_boxes = None

    # -- same-phase query and hand assignment ----------------------------------------------
    def highlight(self, row: float, col: float):
        """Show the masks of the clicked mask's phase and their boxes; the rest dimmed.

        Every layer property change costs napari a refresh, so a click changes as few
        as it can: the phase layer's selected label and which phase's box layer is
        opaque (opacity is a shader uniform; toggling ``visible`` re-uploads the mesh).
        The instance masks are hidden while highlighting, so the other components show
        as the bare image."""
        if self.query is None:
            raise InputError("find phases first")
        hit = self.query(*pixel_of(row, col))
        if hit.is_background:
            self.clear_highlight()
            self.status.emit(hit.describe())
            return hit
        phases = self._layer("phases")
        if phases is not None:
            if phases.selected_label != hit.phase:
                phases.selected_label = hit.phase
            if not phases.show_selected_label:
                phases.show_selected_label = True
        masks = self._layer("masks")
        state = self.state
        if masks is not None and masks.visible and not state.hid_masks:
            state.hid_masks = True
            masks.visible = False
        self._show_boxes(hit.phase)
        self.status.emit(hit.describe())
        return hit

    def _show_boxes(self, phase) -> None:
        state = self.state
        if state.shown_boxes == phase:
            return
        if (old := state.boxes.get(state.shown_boxes)) is not None:
            old.opacity = 0.0
        new = state.boxes.get(phase)
        if new is not None:
            if new not in self.viewer.layers:  # removed by the user: bring it back
                self.viewer.add_layer(new)
            new.opacity = 1.0
        state.shown_boxes = phase
        self._notify("highlight", phase)

    @property
    def highlighted(self) -> int | None:
        """The phase the same-phase highlight shows (None: no highlight)."""
        return self.state.shown_boxes

    def clear_highlight(self) -> None:
        phases = self._layer("phases")
        if phases is not None:
            phases.show_selected_label = False
        masks = self._layer("masks")
        state = self.state
        if masks is not None and state.hid_masks:
            masks.visible = True
        state.hid_masks = False
        self._show_boxes(None)

    def assign(self, row: float, col: float, phase: int) -> int:
        """Put the clicked mask into ``phase`` by hand; it stays there on re-clustering."""
        masks = self._layer("masks")
        if masks is None:
            raise InputError("no masks yet")
        r, c = self._pixel(row, col)
        mask_id = int(np.asarray(masks.data)[r, c])
        if mask_id == 0:
            raise InputError("background: click on a mask to assign it")
        if phase < 1:
            raise InputError("phase ids start at 1")
        self.fixed[mask_id] = int(phase)
        self.status.emit(f"mask {mask_id} -> phase {phase} (kept on re-clustering)")
        return mask_id


__all__ = ["PhaseRun", "PhasesMixin"]
