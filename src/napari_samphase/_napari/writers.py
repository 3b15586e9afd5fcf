"""npe2 writers of a Labels layer: TIFF calibrated with the layer's pixel size, its
per-mask table (``layer.features``) as CSV, and COCO instances JSON (each label an
instance, its ``phase`` feature the category)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _pixel_size(meta: dict):
    from napari_samphase.core.image.units import pixel_size_from_layer

    return pixel_size_from_layer(meta.get("scale", (1.0, 1.0)), meta.get("units"))


def write_labels_tiff(path: str, data, meta: dict) -> list[str]:
    """The labels as TIFF; a layer with a physical scale (units) writes it as the
    file's resolution, so ImageJ/Fiji and the plugin's reader see the pixel size."""
    from napari_samphase.core.image.io import write_tiff

    write_tiff(path, np.asarray(data), _pixel_size(meta))
    return [path]


def write_features_csv(path: str, data, meta: dict) -> list[str]:
    from napari_samphase.core.image.io import write_table_csv

    feats = meta.get("features")
    if feats is None or len(feats) == 0:
        from napari_samphase.core.image.labels import table_from_labels

        table = table_from_labels(np.asarray(data))
    else:
        table = {c: np.asarray(feats[c]) for c in feats.columns}
    write_table_csv(table, Path(path))
    return [path]


def write_labels_coco(path: str, data, meta: dict) -> list[str]:
    """The labels as COCO instances JSON: one instance per label id; its category the
    ``phase`` in ``layer.features`` (rows keyed by ``index`` or ``label``; ids without
    a row are phase 0, ``"unassigned"``), one ``"particle"`` category without phases.
    The pixel size and the layer's provenance (``metadata["samphase"]``) go to
    ``info``."""
    from napari_samphase._napari.layers import MADE_ON
    from napari_samphase._napari.measuring import PROVENANCE, phase_categories
    from napari_samphase.core.image.labels import check_labels
    from napari_samphase.core.outputs.coco import coco_instances, write_coco

    labels = check_labels(np.asarray(data))
    feats = meta.get("features")
    key = None if feats is None else next((k for k in ("index", "label") if k in feats), None)
    phase_of = categories = None
    if key is not None and "phase" in feats:
        phase_of = dict.fromkeys(np.unique(labels[labels > 0]).tolist(), 0)
        given = dict(zip(np.asarray(feats[key]).tolist(), np.asarray(feats["phase"]).tolist(),
                         strict=True))  # fmt: skip
        phase_of.update({i: int(p) for i, p in given.items() if i in phase_of})
        categories = phase_categories(phase_of)
    metadata = meta.get("metadata") or {}
    name = metadata.get(MADE_ON, meta.get("name", ""))
    coco = coco_instances(labels, phase_of, categories, name, pixel_size=_pixel_size(meta))
    if PROVENANCE in metadata:
        coco["info"]["provenance"] = metadata[PROVENANCE]
    write_coco(coco, path)
    return [path]
