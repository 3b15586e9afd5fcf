"""PhaseMapper: the scriptable model behind the dock widget.

It owns the SAM session, the layers it creates and the phase state of one
widget (no module-level state). Compute methods (``load_model``, ``embed``,
``ensure_embedding``, ``compute_*``) are safe to run in a worker thread;
``apply_*`` and the click handlers touch layers and must run in the main thread.

Clicks arrive in the image layer's data coordinates (napari centres pixel ``i`` on
``i``); every layer made here copies the image layer's data-to-world transform and
units, so masks, prompts and boxes sit on a micrograph opened with a pixel size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from psygnal import Signal

from napari_samphase._napari._triton_guard import block_triton
from napari_samphase.core.errors import InputError
from napari_samphase.core.outputs.render import phase_color
from napari_samphase.core.sam.session import image_key

block_triton()  # before anything in this process imports torch

PROMPTS, PREVIEW, MASKS, PHASES, BOXES = (
    "SAM prompts",
    "SAM preview",
    "SAM masks",
    "phases",
    "same-phase boxes",
)
POSITIVE, NEGATIVE = "lime", "red"
# A Labels layer named IMAGE + one of these holds the masks of Image layer IMAGE (to
# train on); the current image's masks are also the MASKS layer the widget fills.
MASKS_SUFFIXES = (" masks", "_masks", " labels", "_labels")
# metadata key of the masks layer: the name of the image its masks were made on
MADE_ON = "samphase_image"
# What a derived layer copies from the image layer so both map data to world alike.
TRANSFORM = ("scale", "translate", "rotate", "shear", "affine", "units")


@dataclass
class ModelChoice:
    model: str = "vit_b"
    checkpoint: str | None = None
    device: str = "auto"

    @property
    def key(self):
        """What the loaded model depends on; a checkpoint file rewritten at the same
        path (a repeated or resumed fine-tuning) is another model."""
        stamp = None
        if self.checkpoint:
            try:
                st = os.stat(self.checkpoint)
                stamp = (st.st_size, st.st_mtime_ns)
            except OSError:  # missing: loading it will say so
                pass
        return (self.model, self.checkpoint, self.device, stamp)


@dataclass
class PhaseRun:
    """A clustering and what the viewer needs to show it: the same-phase index and one
    Shapes layer of bounding boxes per phase, not yet in a viewer."""

    result: object  # core.phases.PhaseResult
    query: object  # core.query.PhaseQuery
    boxes: dict  # phase -> napari Shapes layer

    @classmethod
    def build(cls, result) -> PhaseRun:
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
                name=boxes_name(p),
                face_color="transparent",
                edge_color=np.array([*phase_color(p), 1.0]),
                edge_width=width,
                opacity=0.0,  # shown by the same-phase highlight
            )
        return cls(result, query, boxes)


def layer_image(layer) -> np.ndarray:
    """The 2D (or RGB) pixels of an Image layer (the finest level of a multiscale one)."""
    data = np.asarray(layer.data if not layer.multiscale else layer.data[0])
    if layer.rgb:
        return data
    if data.ndim != 2:
        raise InputError(f"layer {layer.name!r} is {data.ndim}D: pick a 2D image")
    return data


def boxes_name(phase: int) -> str:
    return f"{BOXES}: phase {phase}"


def pixel_of(row: float, col: float) -> tuple[int, int]:
    """The pixel under data coordinate (row, col): napari centres pixel ``i`` on ``i``,
    so it spans [i - 0.5, i + 0.5)."""
    return int(np.floor(row + 0.5)), int(np.floor(col + 0.5))


def set_labels_undoably(layer, labels) -> None:
    """Replace a Labels layer's pixels through its edit history (``data_setitem``): one
    Ctrl+Z (``layer.undo()``) brings the previous labels back. Only changed pixels are
    recorded, so re-running on similar labels keeps the history small."""
    labels = np.asarray(labels)
    changed = np.nonzero(np.asarray(layer.data) != labels)
    if len(changed[0]):
        layer.data_setitem(changed, labels[changed])


class PhaseMapper:
    status = Signal(str)  # a line for the user
    table_changed = Signal(object)  # the phase table (dict of columns)

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.session = None
        self.generator = None  # the last segment-everything's decoder outputs
        self.session_key = None
        self._image_layer = None
        # Bumped whenever the image changes (another layer, or its data replaced), so
        # "is the embedding current?" is an integer compare, not a hash of the pixels.
        self._image_version = 0
        self._embedded = None  # (session, image version) the session's embedding is of
        self.result = None
        self.query = None
        self.fixed: dict[int, int] = {}
        self.table = None
        self._boxes: dict = {}  # phase -> Shapes layer of its members' boxes
        self._shown_boxes = None  # the phase whose boxes are opaque
        self._hid_masks = False  # a highlight hid the masks layer: show it again after
        self._watched_masks = None  # the masks layer whose edits refresh its features
        self._features_key = None  # content key of the masks the features describe

    # -- image and model -----------------------------------------------------------------
    @property
    def image_layer(self):
        """The napari Image layer everything is computed on (None: not chosen yet)."""
        return self._image_layer

    @image_layer.setter
    def image_layer(self, layer) -> None:
        if layer is self._image_layer:
            return
        if self._image_layer is not None:
            self._image_layer.events.data.disconnect(self._image_changed)
        self._image_layer = layer
        if layer is not None:
            layer.events.data.connect(self._image_changed)
        self._image_changed()

    def _image_changed(self, event=None) -> None:
        self._image_version += 1
        # Prompts and their preview were clicked on the previous pixels.
        prompts, preview = self._layer(PROMPTS), self._layer(PREVIEW)
        if prompts is not None and len(prompts.data):
            prompts.data = np.zeros((0, 2))
            prompts.features = {"positive": np.zeros(0, bool)}
        if preview is not None and np.asarray(preview.data).any():
            preview.data = np.zeros_like(np.asarray(preview.data))

    def image(self) -> np.ndarray:
        layer = self.image_layer
        if layer is None:
            raise InputError("choose an image layer first")
        return layer_image(layer)

    def load_model(self, choice: ModelChoice, progress=None):
        """Load (or reuse) the SAM model. Worker-safe."""
        from napari_samphase.core.sam.session import SamSession

        if self.session is None or self.session_key != choice.key:
            self.session = SamSession.from_name(
                choice.model, choice.checkpoint, choice.device, progress=progress
            )
            self.session_key = choice.key
        return self.session

    def embed(self, progress=None):
        """Compute the embedding of the current image (the session skips it when it
        holds this exact image already). Worker-safe."""
        session = self._require_session()
        version = self._image_version  # before reading the pixels: a change meanwhile stays stale
        session.set_image(self.image(), progress=progress)
        self._embedded = (session, version)
        return session

    def embedding_is_current(self) -> bool:
        """Whether the session holds the embedding of the image now in the image layer
        (no change since it was computed: same layer, no ``events.data``)."""
        session = self.session
        return (
            self._embedded is not None
            and self._embedded[0] is session
            and self._embedded[1] == self._image_version
            and getattr(session, "embedding", None) is not None
        )

    def ensure_embedding(self, progress=None):
        """The session, embedded on the current image: re-embeds only after a change.
        Worker-safe; slow after a change (the image encoder runs)."""
        if not self.embedding_is_current():
            self.embed(progress=progress)
        return self.session

    def _require_session(self):
        if self.session is None:
            raise InputError("load a SAM model first (Load + embed)")
        return self.session

    # -- layers --------------------------------------------------------------------------
    def _layer(self, name):
        layers = self.viewer.layers  # a LayerList has no .get
        return layers[name] if name in layers else None  # noqa: SIM401

    def _shape(self):
        return self.image().shape[:2]

    def _transform(self) -> dict:
        """The image layer's data-to-world transform and units, as layer keyword args."""
        src = self.image_layer
        if src is None:
            return {}
        kw = {name: getattr(src, name) for name in TRANSFORM}
        kw["affine"] = np.array(src.affine.affine_matrix)  # a copy: not the image's object
        return kw

    def _align(self, layer):
        """Put ``layer`` on the image: the same data-to-world transform and units."""
        for name, value in self._transform().items():
            setattr(layer, name, value)
        return layer

    def _labels_layer(self, name, **kw):
        layer = self._layer(name)
        shape = self._shape()
        if layer is None:
            data = np.zeros(shape, np.uint32)
            return self.viewer.add_labels(data, name=name, **self._transform(), **kw)
        if layer.data.shape != shape:
            if name != PREVIEW:  # user data: never discarded behind their back
                raise InputError(
                    f"layer {name!r} is {layer.data.shape[0]} x {layer.data.shape[1]} but "
                    f"image {self.image_layer.name!r} is {shape[0]} x {shape[1]}: "
                    "rename or delete that layer"
                )
            layer.data = np.zeros(shape, np.uint32)  # a preview of another image: start over
            self._align(layer)
        return layer

    def _pixel(self, row: float, col: float) -> tuple[int, int]:
        """The image pixel under data coordinate (row, col); InputError outside the image
        (a negative index would wrap round to the far edge)."""
        r, c = pixel_of(row, col)
        h, w = self._shape()
        if not (0 <= r < h and 0 <= c < w):
            raise InputError(f"({row:.1f}, {col:.1f}) is outside the image ({h} x {w} pixels)")
        return r, c

    def prompts_layer(self):
        layer = self._layer(PROMPTS)
        if layer is None:
            layer = self.viewer.add_points(
                np.zeros((0, 2)),
                name=PROMPTS,
                size=max(4, self._shape()[0] // 80),
                face_color=POSITIVE,
                border_color="white",
                features={"positive": np.zeros(0, bool)},
                **self._transform(),
            )
            layer.mode = "pan_zoom"
        return layer

    def masks_layer(self):
        layer = self._labels_layer(MASKS)
        if self.image_layer is not None:  # whatever is written next is of this image
            layer.metadata[MADE_ON] = self.image_layer.name
        if layer is not self._watched_masks:
            # Undo/redo and brush strokes change the pixels without telling us; undo
            # only refreshes the layer (set_data), painting emits paint. An undo while
            # the layer is hidden is caught when it is shown: that refresh emits set_data.
            for event in (layer.events.set_data, layer.events.paint):
                event.connect(self._masks_edited)
            self._watched_masks = layer
        return layer

    def _masks_edited(self, event=None) -> None:
        """Keep ``masks.features`` describing the masks on screen (a hash of the
        pixels decides: about 15 ms for 2048 x 2048; the table only when they changed)."""
        layer = self._watched_masks
        if layer is None or layer not in self.viewer.layers:
            return
        if image_key(np.asarray(layer.data)) != self._features_key:
            self._refresh_features()

    # -- training data -------------------------------------------------------------------
    def training_sources(self) -> dict[str, str]:
        """Image layer name -> the Labels layer holding its masks, for every open 2D image
        with one of its size: "IMAGE masks" (or ``MASKS_SUFFIXES``), else for the current
        image the MASKS layer."""
        from napari.layers import Image, Labels

        layers = self.viewer.layers
        found = {}
        for image in [ly for ly in layers if isinstance(ly, Image)]:
            names = [image.name + suffix for suffix in MASKS_SUFFIXES]
            if image is self.image_layer:
                names.append(MASKS)
            # the shape without reading the pixels (a dask or multiscale image stays lazy)
            shape = tuple(image.level_shapes[0]) if image.multiscale else np.shape(image.data)
            if len(shape) - image.rgb != 2:  # a stack: not a training image
                continue
            for name in names:
                masks = layers[name] if name in layers else None  # noqa: SIM401
                made_on = getattr(masks, "metadata", {}).get(MADE_ON)
                if name == MASKS and made_on not in (None, image.name):
                    continue  # the widget's masks of another image
                if isinstance(masks, Labels) and np.shape(masks.data) == shape[:2]:
                    found[image.name] = name
                    break
        return found

    def training_data(self, names) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(image name, image, masks) copies for the images ``names`` (main thread: edits
        made while a worker trains on them do not reach it)."""
        sources = self.training_sources()
        missing = [n for n in names if n not in sources]
        if missing:
            raise InputError(f"image {missing[0]!r} has no masks layer of its size")
        layers = self.viewer.layers
        return [
            (n, np.array(layer_image(layers[n])), np.array(layers[sources[n]].data)) for n in names
        ]

    # -- clicks to SAM -------------------------------------------------------------------
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

    def update_preview(self):
        """Run SAM on the current prompts; the mask goes to the preview layer. The
        embedding is of the current image: recomputed here if the image changed."""
        layer = self.prompts_layer()
        preview = self._labels_layer(PREVIEW, opacity=0.6)
        if len(layer.data) == 0:
            preview.data = np.zeros(self._shape(), np.uint8)
            return None
        self._require_session()
        self.ensure_embedding()
        positives = np.asarray(layer.features["positive"], bool)
        result = self.session.predict(layer.data[:, :2], positives.astype(int))
        new = result.mask.astype(np.uint8)
        changed = np.nonzero(np.asarray(preview.data) != new)
        if len(changed[0]):  # only the changed pixels: a partial texture update
            preview.data_setitem(changed, new[changed])
        self.status.emit(f"preview: {int(result.mask.sum())} px, score {result.score:.2f}")
        return result

    def clear_prompts(self) -> None:
        layer = self.prompts_layer()
        layer.data = np.zeros((0, 2))
        layer.features = {"positive": np.zeros(0, bool)}
        preview = self._layer(PREVIEW)
        if preview is not None:
            preview.data = np.zeros(self._shape(), np.uint8)

    def commit(self) -> int:
        """Add the preview as a new mask (on unlabelled pixels) and clear the prompts."""
        preview = self._layer(PREVIEW)
        if preview is None or not np.asarray(preview.data).any():
            raise InputError("no object to commit: click on the image first")
        masks = self.masks_layer()
        data = np.asarray(masks.data)
        new_id = int(data.max(initial=0)) + 1
        sel = (np.asarray(preview.data) > 0) & (data == 0)
        if not sel.any():
            raise InputError("the object lies on existing masks only: nothing to commit")
        masks.data_setitem(np.nonzero(sel), new_id)  # through the history: Ctrl+Z undoes it
        self._refresh_features()
        self.clear_prompts()
        self.status.emit(f"committed mask {new_id} ({int(sel.sum())} px)")
        return new_id

    # -- segment everything --------------------------------------------------------------
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
        seg = gen.generate(pred_iou_thresh, stability_thresh, min_area=min_area, progress=progress)
        return clean_segmentation(seg, self.image(), min_area=min_area, progress=progress)

    def compute_proposal(self, proposer: str, progress=None, **options):
        from napari_samphase.core.proposers import segment

        return segment(self.image(), proposer, progress=progress, **options)

    def apply_segmentation(self, seg) -> None:
        self.clear_highlight()
        self._set_box_layers({})  # boxes of the old masks would point at nothing
        set_labels_undoably(self.masks_layer(), seg.labels)
        self.fixed = {}
        self.result = self.query = None
        self._refresh_features(seg.table)
        self.status.emit(f"{seg.n_masks} masks")

    def _refresh_features(self, table=None):
        from napari_samphase.core.image.labels import table_from_labels

        layer = self.masks_layer()
        data = np.asarray(layer.data)
        if table is None:
            table = table_from_labels(data)
        self._features_key = image_key(data)
        feats = {"index": table["id"], **table}
        if self.result is not None and len(table["id"]):
            feats["phase"] = self.result.phase_of(table["id"])
        layer.features = feats

    # -- phases --------------------------------------------------------------------------
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

        layer = self._layer(MASKS)
        if layer is None and mode == "masks":
            raise InputError("no masks yet: run segment everything or commit objects first")
        if self.session is not None and needs_embedding(features):
            self.ensure_embedding(progress)
        emb = embedding_for(features, self.session)
        if mode != "masks":
            return PhaseRun.build(
                self._map_phases(layer, k, features, background, seed, emb, mode, progress)
            )
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
        return PhaseRun.build(result)

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

    def apply_phases(self, run) -> None:
        """Show a ``PhaseRun`` (or a bare core ``PhaseResult``) on layers. Main thread."""
        from napari.utils.colormaps import DirectLabelColormap

        from napari_samphase.core.outputs.report import phase_table_of

        if not isinstance(run, PhaseRun):
            run = PhaseRun.build(run)
        result = self.result = run.result
        masks = self._layer(MASKS)
        if masks is None or not np.array_equal(np.asarray(masks.data), result.labels):
            # a pixel mode's components (or masks the clustering added) become the masks
            set_labels_undoably(self.masks_layer(), result.labels)
        self.fixed = dict(result.fixed)
        self.query = run.query
        self.clear_highlight()
        colors = {None: (0, 0, 0, 0), 0: (0, 0, 0, 0)}
        colors.update({p: (*phase_color(p), 1.0) for p in range(1, result.n_phases + 1)})
        layer = self._layer(PHASES)
        if layer is None:
            layer = self.viewer.add_labels(
                result.phase_labels, name=PHASES, opacity=0.55, **self._transform()
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
        self.table = phase_table_of(result, self.image())
        self.table_changed.emit(self.table)
        self.status.emit(f"{result.n_phases} phases over {len(result.mask_ids)} masks")

    def _set_box_layers(self, boxes: dict) -> None:
        for old in self._boxes.values():
            if old in self.viewer.layers:
                self.viewer.layers.remove(old)
        self._boxes = boxes
        for layer in boxes.values():
            self.viewer.add_layer(self._align(layer))
        self._shown_boxes = None

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
        phases = self._layer(PHASES)
        if phases is not None:
            if phases.selected_label != hit.phase:
                phases.selected_label = hit.phase
            if not phases.show_selected_label:
                phases.show_selected_label = True
        masks = self._layer(MASKS)
        if masks is not None and masks.visible and not self._hid_masks:
            self._hid_masks = True
            masks.visible = False
        self._show_boxes(hit.phase)
        self.status.emit(hit.describe())
        return hit

    def _show_boxes(self, phase) -> None:
        if self._shown_boxes == phase:
            return
        if (old := self._boxes.get(self._shown_boxes)) is not None:
            old.opacity = 0.0
        new = self._boxes.get(phase)
        if new is not None:
            if new not in self.viewer.layers:  # removed by the user: bring it back
                self.viewer.add_layer(new)
            new.opacity = 1.0
        self._shown_boxes = phase

    def clear_highlight(self) -> None:
        phases = self._layer(PHASES)
        if phases is not None:
            phases.show_selected_label = False
        masks = self._layer(MASKS)
        if masks is not None and self._hid_masks:
            masks.visible = True
        self._hid_masks = False
        self._show_boxes(None)

    def assign(self, row: float, col: float, phase: int) -> int:
        """Put the clicked mask into ``phase`` by hand; it stays there on re-clustering."""
        masks = self._layer(MASKS)
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

    def export_table(self, path: str) -> None:
        from napari_samphase.core.outputs.report import save_report

        if self.table is None:
            raise InputError("find phases first")
        path = str(path)
        base = path[:-4] if path.lower().endswith(".csv") else path
        save_report(self.table, path, base + ".png" if base != path else None)
        self.export_panoptic(base)

    def export_panoptic(self, base: str) -> None:
        """``BASE_panoptic.png`` + ``.json`` (COCO panoptic) from the phases and masks
        layers: the phase of every pixel, and each particle's segment from its mask."""
        from napari_samphase.core.outputs.panoptic import (
            panoptic_files,
            panoptic_from_phases,
            write_panoptic,
        )

        phases, masks = self._layer(PHASES), self._layer(MASKS)
        if phases is None:
            raise InputError("find phases first")
        labels = None if masks is None else np.asarray(masks.data)
        # the background phase is stuff, as the CLI's default --stuff
        panoptic = panoptic_from_phases(np.asarray(phases.data), labels, stuff=(0,))
        folder, stem = os.path.split(base)
        name = self.image_layer.name if self.image_layer is not None else stem
        write_panoptic(panoptic, *panoptic_files(folder or ".", stem), file_name=name)
