"""PhaseMapper: the scriptable model behind the dock widget.

It owns the SAM session, the layers it creates and the phase state of one widget (no
module-level state). Compute methods (``load_model``, ``embed``, ``ensure_embedding``,
``compute_*``) are safe to run in a worker thread; ``apply_*`` and the click handlers
touch layers and must run in the main thread.

The work is split by responsibility: this module holds the image, the model, the
per-image state and the training data; :mod:`.segmenting` segment everything,
:mod:`.prompting` the clicks and boxes for SAM, :mod:`.phasing` the phases, the
same-phase highlight and hand assignment, :mod:`.measuring` the per-mask table
(``layer.features``), provenance and exports, and :mod:`.layers` how layers are named
(after their image, so two images keep separate layers) and placed (the image's
transform and units).
"""

from __future__ import annotations

import logging
import os
import weakref
from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal

from napari_samphase._napari._triton_guard import block_triton
from napari_samphase._napari.layers import (
    MADE_ON,
    MASKS_SUFFIXES,
    SUFFIXES,
    layer_image,
    layer_name,
    set_labels_undoably,
    transform_of,
)
from napari_samphase._napari.measuring import MeasureMixin
from napari_samphase._napari.phasing import PhaseRun, PhasesMixin
from napari_samphase._napari.prompting import PromptsMixin
from napari_samphase._napari.segmenting import SegmentMixin
from napari_samphase.core.errors import InputError
from napari_samphase.core.sam.session import image_key

block_triton()  # before anything in this process imports torch

log = logging.getLogger(__name__)

__all__ = ["ModelChoice", "PhaseMapper", "PhaseRun", "ImageState", "layer_image"]


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
class ImageState:
    """What the widget knows about one image: its phases, the same-phase index and box
    layers, hand assignments, and how its masks were made. Switching the image in the
    widget switches to that image's state; its layers keep their names."""

    result: object = None  # core.phases.PhaseResult
    query: object = None  # core.phases.query.PhaseQuery
    fixed: dict = field(default_factory=dict)  # mask id -> phase, by hand
    table: dict | None = None  # the phase table (dict of columns)
    boxes: dict = field(default_factory=dict)  # phase -> Shapes layer of its boxes
    shown_boxes: int | None = None  # the phase whose boxes are opaque
    hid_masks: bool = False  # a highlight hid the masks layer: show it again after
    features_key: str | None = None  # content key of the masks the features describe
    particles: dict | None = None  # core.measure.particle_table of those masks
    made: dict = field(default_factory=dict)  # provenance fields of the masks
    phase_params: dict = field(default_factory=dict)  # provenance fields of the phases
    name: str = ""  # the image's name its layers carry (a rename moves them along)


def _state_attr(name: str, doc: str):
    """A PhaseMapper attribute that lives in the current image's :class:`ImageState`."""

    def get(self):
        return getattr(self.state, name)

    def set_(self, value):
        setattr(self.state, name, value)

    return property(get, set_, doc=doc)


class PhaseMapper(SegmentMixin, PromptsMixin, PhasesMixin, MeasureMixin):
    status = Signal(str)  # a line for the user
    table_changed = Signal(object)  # the phase table (dict of columns)
    boxes_changed = Signal()  # a box prompt was drawn, moved or deleted

    result = _state_attr("result", "The current image's PhaseResult (None: no phases).")
    query = _state_attr("query", "The current image's same-phase index.")
    fixed = _state_attr("fixed", "Hand assignments of the current image: mask id -> phase.")
    table = _state_attr("table", "The current image's phase table.")

    def __init__(self, viewer) -> None:
        self.viewer = viewer
        self.session = None
        self.generator = None  # the last segment-everything's decoder outputs
        self.generator_points = None  # its points per side
        self.session_key = None
        self._image_layer = None
        # Bumped whenever the image changes (another layer, or its data replaced), so
        # "is the embedding current?" is an integer compare, not a hash of the pixels.
        self._image_version = 0
        self._embedded = None  # (session, image version) the session's embedding is of
        self._states = weakref.WeakKeyDictionary()  # image layer -> ImageState
        self._no_image = ImageState()
        self._watched = weakref.WeakSet()  # masks / box layers whose edits we follow
        self._made = None  # (segmentation, image layer, provenance fields) being computed
        self._subscribers: list = []
        # With auto_preview, a box drawn on the boxes layer runs SAM at once (in the
        # main thread); the widget turns it off and previews from boxes_changed in a
        # worker when the image must be embedded first.
        self.auto_preview = True
        self._quiet = False  # our own edits of the boxes layer: no preview per edit
        self._writing = False  # our own edits of the masks: features follow explicitly

    # -- subscribers (the measurement dock) -------------------------------------------------
    def subscribe(self, fn):
        """Call ``fn(kind, value)`` on changes: ``("phases", PhaseRun)`` after phases are
        applied or re-clustered, ``("highlight", phase or None)`` when the same-phase
        highlight changes or clears, ``("masks", None)`` when the masks change.
        Returns a function that unsubscribes ``fn``."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn) if fn in self._subscribers else None

    def _notify(self, kind: str, value=None) -> None:
        for fn in list(self._subscribers):
            try:
                fn(kind, value)
            except Exception as exc:  # a view's bug must not break segmentation
                log.exception("samphase subscriber failed on %s", kind)
                self.status.emit(f"display update failed: {exc}")

    # -- image and model -----------------------------------------------------------------
    @property
    def image_layer(self):
        """The napari Image layer everything is computed on (None: not chosen yet)."""
        return self._image_layer

    @image_layer.setter
    def image_layer(self, layer) -> None:
        if layer is self._image_layer:
            return
        old = self._image_layer
        if old is not None:
            self.clear_highlight()  # the old image's masks show again
            old.events.data.disconnect(self._image_data_changed)
        self._image_layer = layer
        self._image_version += 1
        if layer is not None:
            layer.events.data.connect(self._image_data_changed)
            self.state  # noqa: B018 - made now: it follows the image's renames from here
            self._masks_edited()  # edits made while another image was current

    @property
    def state(self) -> ImageState:
        """The current image's :class:`ImageState`."""
        layer = self._image_layer
        if layer is None:
            return self._no_image
        if layer not in self._states:
            self._states[layer] = ImageState(name=layer.name)
            layer.events.name.connect(self._image_renamed)
        return self._states[layer]

    def _image_data_changed(self, event=None) -> None:
        self._image_version += 1
        self._clear_prompt_layers()  # clicked and drawn on the previous pixels

    def _image_renamed(self, event) -> None:
        """An image's derived layers follow its new name (where that name is free)."""
        state = self._states.get(event.source)
        if state is None:
            return
        old, new = state.name, event.source.name
        state.name = new
        if old == new:
            return
        layers = self.viewer.layers
        renames = [(old + s, new + s) for s in SUFFIXES.values()]
        renames += [(ly.name, new + ly.name[len(old) :]) for ly in state.boxes.values()]
        for before, after in renames:
            if before in layers and after not in layers:
                layers[before].name = after

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
    def layer_name(self, kind: str) -> str:
        """The name of the current image's ``kind`` layer (``"masks"``, ``"phases"``,
        ``"prompts"``, ``"boxes"``, ``"preview"``): ``"<image> <kind>"``."""
        if self.image_layer is None:
            raise InputError("choose an image layer first")
        return layer_name(self.image_layer.name, kind)

    def layer(self, kind: str):
        """The current image's ``kind`` layer (see :meth:`layer_name`); None when absent."""
        return self._layer(kind)

    def _layer(self, kind):
        if self.image_layer is None:
            return None
        name = layer_name(self.image_layer.name, kind)
        layers = self.viewer.layers  # a LayerList has no .get
        return layers[name] if name in layers else None  # noqa: SIM401

    def _shape(self):
        return self.image().shape[:2]

    def _transform(self) -> dict:
        """The image layer's data-to-world transform and units, as layer keyword args."""
        return transform_of(self.image_layer)

    def _align(self, layer):
        """Put ``layer`` on the image: the same data-to-world transform and units."""
        for name, value in self._transform().items():
            setattr(layer, name, value)
        return layer

    def _labels_layer(self, kind, **kw):
        name = self.layer_name(kind)
        layer = self._layer(kind)
        shape = self._shape()
        if layer is None:
            data = np.zeros(shape, np.uint32)
            return self.viewer.add_labels(data, name=name, **self._transform(), **kw)
        if layer.data.shape != shape:
            if kind != "preview":  # user data: never discarded behind their back
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
        from napari_samphase._napari.layers import pixel_of

        r, c = pixel_of(row, col)
        h, w = self._shape()
        if not (0 <= r < h and 0 <= c < w):
            raise InputError(f"({row:.1f}, {col:.1f}) is outside the image ({h} x {w} pixels)")
        return r, c

    def masks_layer(self):
        """The current image's masks layer ``"<image> masks"`` (made when missing)."""
        layer = self._labels_layer("masks")
        layer.metadata[MADE_ON] = self.image_layer.name
        if layer not in self._watched:
            # Undo/redo and brush strokes change the pixels without telling us; undo
            # only refreshes the layer (set_data), painting emits paint. An undo while
            # the layer is hidden is caught when it is shown: that refresh emits set_data.
            for event in (layer.events.set_data, layer.events.paint):
                event.connect(self._masks_edited)
            self._watched.add(layer)
        return layer

    def _masks_edited(self, event=None) -> None:
        """Keep ``masks.features`` describing the masks on screen (a hash of the
        pixels decides: about 15 ms for 2048 x 2048; the table only when they changed).
        Another image's masks are brought up to date when that image is chosen."""
        layer = self._layer("masks")
        if layer is None or layer not in self._watched or self._writing:
            return  # not ours (a user's layer we never wrote), or our own write
        if event is not None and getattr(event, "source", layer) is not layer:
            return
        if image_key(np.asarray(layer.data)) != self.state.features_key:
            self._refresh_features()
            self._notify("masks")

    def _write_masks(self, labels, where=None) -> None:
        """Write the masks through the undo history: all ``labels`` (only the changed
        pixels), or ``labels`` (one id) at the index ``where``."""
        layer = self.masks_layer()
        self._writing = True
        try:
            if where is None:
                set_labels_undoably(layer, labels)
            else:
                layer.data_setitem(where, labels)
        finally:
            self._writing = False

    # -- training data -------------------------------------------------------------------
    def training_sources(self) -> dict[str, str]:
        """Image layer name -> the Labels layer holding its masks, for every open 2D image
        with one of its size: "IMAGE masks" (the widget's own) or ``MASKS_SUFFIXES``."""
        from napari.layers import Image, Labels

        layers = self.viewer.layers
        found = {}
        for image in [ly for ly in layers if isinstance(ly, Image)]:
            # the shape without reading the pixels (a dask or multiscale image stays lazy)
            shape = tuple(image.level_shapes[0]) if image.multiscale else np.shape(image.data)
            if len(shape) - image.rgb != 2:  # a stack: not a training image
                continue
            for name in [image.name + suffix for suffix in MASKS_SUFFIXES]:
                masks = layers[name] if name in layers else None  # noqa: SIM401
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
