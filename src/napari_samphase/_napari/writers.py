"""npe2 writers: a Labels layer as TIFF, and its per-mask table (layer.features) as CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_labels_tiff(path: str, data, meta: dict) -> list[str]:
    from napari_samphase.core.image.io import write_tiff

    write_tiff(path, np.asarray(data))
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
