"""Layer names and placement for the layers the widget makes.

Every derived layer is named after its image (``"<image> masks"``, ``"<image>
phases"``...), so two micrographs open at once keep their own layers, and copies the
image layer's data-to-world transform and units, so it sits on a micrograph opened with
a pixel size. Clicks arrive in the image layer's data coordinates (napari centres pixel
``i`` on ``i``).
"""

from __future__ import annotations

import numpy as np

from napari_samphase.core.errors import InputError

# kind -> what follows the image name in the layer's name
SUFFIXES = {
    "prompts": " prompts",  # Points: positive / negative clicks
    "boxes": " boxes",  # Shapes: rectangles, SAM box prompts
    "preview": " preview",  # Labels: SAM's mask for the prompts
    "masks": " masks",  # Labels: the instance masks
    "phases": " phases",  # Labels: the phase of every pixel
}
PHASE_BOXES = " same-phase boxes: phase "  # Shapes: bounding boxes of one phase's masks
POSITIVE, NEGATIVE = "lime", "red"
# A Labels layer named IMAGE + one of these holds the masks of Image layer IMAGE (to
# train on); the first is the one the widget fills.
MASKS_SUFFIXES = (SUFFIXES["masks"], "_masks", " labels", "_labels")
# metadata key of the masks layer: the name of the image its masks were made on
MADE_ON = "samphase_image"
# What a derived layer copies from the image layer so both map data to world alike.
TRANSFORM = ("scale", "translate", "rotate", "shear", "affine", "units")


def layer_name(image: str, kind: str) -> str:
    """The name of ``kind``'s layer (a key of :data:`SUFFIXES`) for image ``image``."""
    return image + SUFFIXES[kind]


def phase_boxes_name(image: str, phase: int) -> str:
    """The Shapes layer of the bounding boxes of ``phase``'s masks on ``image``."""
    return f"{image}{PHASE_BOXES}{phase}"


def derived_names(image: str) -> list[str]:
    """Names of the per-image layers that exist whatever the phases (not the boxes)."""
    return [layer_name(image, kind) for kind in SUFFIXES]


def layer_image(layer) -> np.ndarray:
    """The 2D (or RGB) pixels of an Image layer (the finest level of a multiscale one)."""
    data = np.asarray(layer.data if not layer.multiscale else layer.data[0])
    if layer.rgb:
        return data
    if data.ndim != 2:
        raise InputError(f"layer {layer.name!r} is {data.ndim}D: pick a 2D image")
    return data


def transform_of(layer) -> dict:
    """``layer``'s data-to-world transform and units, as layer keyword arguments."""
    if layer is None:
        return {}
    kw = {name: getattr(layer, name) for name in TRANSFORM}
    kw["affine"] = np.array(layer.affine.affine_matrix)  # a copy: not the image's object
    return kw


def pixel_of(row: float, col: float) -> tuple[int, int]:
    """The pixel under data coordinate (row, col): napari centres pixel ``i`` on ``i``,
    so it spans [i - 0.5, i + 0.5)."""
    return int(np.floor(row + 0.5)), int(np.floor(col + 0.5))


def rectangle_to_xyxy(corners) -> np.ndarray:
    """A napari rectangle (its corners in data coordinates, (row, col)) -> SAM's box
    ``(x0, y0, x1, y1)``: napari's pixel ``i`` spans ``[i - 0.5, i + 0.5)``, SAM's
    ``[i, i + 1)``."""
    pts = np.asarray(corners, float)[:, -2:] + 0.5
    (r0, c0), (r1, c1) = pts.min(0), pts.max(0)
    return np.array([c0, r0, c1, r1])


def set_labels_undoably(layer, labels) -> None:
    """Replace a Labels layer's pixels through its edit history (``data_setitem``): one
    Ctrl+Z (``layer.undo()``) brings the previous labels back. Only changed pixels are
    recorded, so re-running on similar labels keeps the history small."""
    labels = np.asarray(labels)
    changed = np.nonzero(np.asarray(layer.data) != labels)
    if len(changed[0]):
        layer.data_setitem(changed, labels[changed])
