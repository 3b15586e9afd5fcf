"""Commands behind the plugin's napari menus: Layers > Segment, Classify and Measure.

napari calls each with the current viewer (injected by the ``Viewer`` annotation). They
drive the dock widget as its buttons do, so a menu action and a click share one state
(the widget's PhaseMapper) and one set of options (the model, K, features chosen in the
widget). This module sits below ``_qt`` (import-linter layers): it reaches the widget
through napari's plugin dock registry, never by importing it; the command that docks a
measurement of any Labels layer builds a Qt widget, so it lives in ``_qt.measure_dock``.
"""

from __future__ import annotations

import numpy as np
from napari.layers import Image, Labels
from napari.viewer import Viewer

from napari_samphase._napari.layers import MADE_ON
from napari_samphase.core.errors import InputError
from napari_samphase.core.image.units import PixelSize, pixel_size_from_layer

PLUGIN = "napari-samphase"
WIDGET = "SAM phase mapper"  # display_name of the widget contribution in napari.yaml


def open_widget(viewer: Viewer):
    """Dock the phase mapper (or show it again when docked already) and return it.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer to dock it in.
    """
    dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, WIDGET)
    dock.show()
    dock.raise_()
    return widget


def _widget_on_selected_image(viewer: Viewer):
    """The docked widget, working on the selected Image layer when one is selected
    (otherwise on the image it already had)."""
    layer = viewer.layers.selection.active
    widget = open_widget(viewer)
    if isinstance(layer, Image):
        widget.image_combo.setCurrentText(layer.name)
    if widget.mapper.image_layer is None:
        raise InputError("open or select an image layer first")
    return widget


def segment_everything(viewer: Viewer):
    """Segment the selected image with the model and options set in the widget, as its
    "Segment everything" button does (in the background, with a progress bar).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose selected Image layer is segmented.
    """
    widget = _widget_on_selected_image(viewer)
    widget.run_segment_everything()
    return widget


def find_phases(viewer: Viewer):
    """Cluster the selected image's masks into phases with the widget's K, features and
    background options, as its "Find phases" button does.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose selected Image layer (and its masks layer) is classified.
    """
    widget = _widget_on_selected_image(viewer)
    widget.run_find_phases()
    return widget


def open_measurements(viewer: Viewer):
    """Dock the phase mapper and its measurement dock (fractions, particle sizes), which
    follows every re-clustering, mask edit and highlighted phase.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer to dock them in.
    """
    widget = open_widget(viewer)
    widget.show_measurements()
    return widget


def measurement_inputs(viewer: Viewer, layer) -> tuple[np.ndarray, np.ndarray | None, PixelSize]:
    """What measuring the Labels ``layer`` takes: ``(phase_labels, instances, pixel_size)``.

    A layer whose ``features`` give a ``phase`` per label (the masks layer after Find
    phases) holds particles: its labels are the instances and their phases make the
    phase map. Any other Labels layer is read as a phase map (instances: the connected
    components of each phase). The pixel size is the layer's own scale and units; when
    those say nothing, that of the image it was made on (``metadata``) or of an
    open image of its shape with a known size (the first).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer holding ``layer`` (and its image).
    layer : napari.layers.Labels
        The labels to measure.
    """
    if not isinstance(layer, Labels):
        raise InputError(
            "select a Labels layer to measure: a phase map, or the masks after Find phases"
        )
    data = np.asarray(layer.data if not layer.multiscale else layer.data[0])
    if data.ndim != 2:
        raise InputError(f"layer {layer.name!r} is {data.ndim}D: measure a 2D labels layer")
    phase_labels, instances = data, None
    feats = layer.features
    if len(feats) and "phase" in feats and "index" in feats:
        ids = np.asarray(feats["index"], np.int64)
        lut = np.zeros(max(int(data.max(initial=0)), int(ids.max(initial=0))) + 1, np.int32)
        lut[ids] = np.asarray(feats["phase"], np.int32)
        instances, phase_labels = data, lut[data]
    return phase_labels, instances, _pixel_size_of(viewer, layer, data.shape)


def _pixel_size_of(viewer: Viewer, layer, shape) -> PixelSize:
    size = pixel_size_from_layer(layer.scale, layer.units)
    if size.known:
        return size
    layers = viewer.layers
    made_on = layer.metadata.get(MADE_ON)
    first = [layers[made_on]] if made_on in layers else []  # the image it was made on
    images = [ly for ly in first + list(layers) if isinstance(ly, Image)]
    for image in images:
        image_shape = tuple(image.level_shapes[0]) if image.multiscale else np.shape(image.data)
        if tuple(image_shape[:2] if image.rgb else image_shape) == tuple(shape):
            size = pixel_size_from_layer(image.scale, image.units)
            if size.known:
                return size
    return size
