"""The phase table (area fraction, count, mean intensity per phase) and its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_samphase.core.image.convert import to_gray_float
from napari_samphase.core.image.io import write_table_csv
from napari_samphase.core.image.labels import majority_value
from napari_samphase.core.outputs.render import fraction_chart, phase_hex


def phase_table(
    phase_labels: np.ndarray,
    image: np.ndarray | None = None,
    mask_ids=None,
    phase_of_mask=None,
    include_background: bool = True,
):
    """Columns: phase, color, area_fraction (% of image), count (masks), mean_intensity.

    Phase 0 is the background (pixels in no mask), listed when present.
    """
    phase_labels = np.asarray(phase_labels)
    n_px = phase_labels.size
    area = np.bincount(phase_labels.ravel())
    phases = [p for p in range(len(area)) if area[p] > 0 and (p > 0 or include_background)]
    counts = np.zeros(len(area), np.int64)
    if phase_of_mask is not None:
        pc = np.bincount(np.asarray(phase_of_mask), minlength=len(area))
        counts[: len(pc)] = pc[: len(area)]
    if image is not None:
        gray = to_gray_float(image).ravel()
        mean = np.bincount(phase_labels.ravel(), gray, len(area)) / np.maximum(area, 1)
    else:
        mean = np.full(len(area), np.nan)
    return {
        "phase": np.array(phases, np.int64),
        "color": np.array([phase_hex(p) for p in phases]),
        "area_fraction": np.array([100.0 * area[p] / n_px for p in phases]),
        "count": np.array([counts[p] for p in phases], np.int64),
        "mean_intensity": np.array([mean[p] for p in phases]),
    }


def phase_table_of(result, image=None):
    return phase_table(result.phase_labels, image, result.mask_ids, result.phase_of_mask)


def save_report(table, out_csv: str | Path, out_png: str | Path | None = None) -> None:
    write_table_csv(table, out_csv)
    if out_png is not None:
        fraction_chart(table["phase"], table["area_fraction"], out_png)


def mask_phase_table(labels: np.ndarray, result) -> dict[str, np.ndarray]:
    """One row per mask of ``labels``: its id, phase and (where the phases were found
    by clustering these masks) the features they were clustered on.

    The pixel modes make their own regions, and the masks mode may add background
    masks: a mask's phase is then the phase most of its pixels have, so the table
    always describes ``labels``, the masks that are written beside it.
    """
    labels = np.asarray(labels)
    ids = np.unique(labels[labels > 0])
    same = np.array_equal(np.where(labels > 0, result.labels, 0), labels)
    if same and np.isin(ids, result.mask_ids).all():
        order = np.argsort(result.mask_ids)
        rows = order[np.searchsorted(result.mask_ids[order], ids)]
        table = {"id": ids, "phase": result.phase_of_mask[rows]}
        table.update({n: result.features[rows, j] for j, n in enumerate(result.feature_names)})
        return table
    present, _, major = majority_value(labels, result.phase_labels)
    return {"id": ids, "phase": major[present > 0].astype(np.int64)}
