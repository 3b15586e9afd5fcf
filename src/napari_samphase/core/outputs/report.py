"""The phase table (area in units, area fraction with its interval, count, mean intensity
per phase) and its files."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_samphase.core.image.convert import to_gray_float
from napari_samphase.core.image.io import write_table_csv
from napari_samphase.core.image.labels import majority_value
from napari_samphase.core.image.units import PixelSize
from napari_samphase.core.outputs.render import fraction_chart, phase_hex


def phase_table(
    phase_labels: np.ndarray,
    image: np.ndarray | None = None,
    mask_ids=None,
    phase_of_mask=None,
    include_background: bool = True,
    pixel_size: PixelSize | None = None,
    confidence: float = 0.95,
):
    """Area, area fraction with its confidence interval, count and mean intensity per
    phase.

    Parameters
    ----------
    phase_labels : np.ndarray
        H x W phase per pixel; phase 0 is the background (pixels in no mask), listed
        when present and ``include_background``.
    image : np.ndarray, optional
        For ``mean_intensity`` (NaN without it).
    mask_ids, phase_of_mask : array-like, optional
        The masks and their phases, for ``count``.
    pixel_size : PixelSize, optional
        Areas in um^2 when known, in pixels otherwise (unknown or None).
    confidence : float
        Of the interval within this one image
        (:func:`core.measure.fractions.fraction_ci_within_image`: the image cut into
        fields, a t-interval over their fractions).

    Returns
    -------
    dict
        Columns ``phase``, ``color``, ``area<_um2|_px2>``, ``area_fraction`` (% of the
        image), ``area_fraction_ci_low``, ``area_fraction_ci_high`` (%), ``count``
        (masks), ``mean_intensity``.
    """
    from napari_samphase.core.measure.fractions import fraction_ci_within_image

    pixel_size = pixel_size or PixelSize.pixels()
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
    ci = np.array(
        [fraction_ci_within_image(phase_labels == p, confidence=confidence)[1:] for p in phases]
    ).reshape(-1, 2)
    ci = np.clip(100.0 * ci, 0.0, 100.0)  # a t-interval may pass 0 or 100 %
    return {
        "phase": np.array(phases, np.int64),
        "color": np.array([phase_hex(p) for p in phases]),
        f"area{pixel_size.suffix(2)}": pixel_size.area(area[phases].astype(np.float64)),
        "area_fraction": np.array([100.0 * area[p] / n_px for p in phases]),
        "area_fraction_ci_low": ci[:, 0],
        "area_fraction_ci_high": ci[:, 1],
        "count": np.array([counts[p] for p in phases], np.int64),
        "mean_intensity": np.array([mean[p] for p in phases]),
    }


def phase_table_of(result, image=None, pixel_size: PixelSize | None = None):
    """:func:`phase_table` of a :class:`PhaseResult`."""
    return phase_table(
        result.phase_labels, image, result.mask_ids, result.phase_of_mask, pixel_size=pixel_size
    )


def _cell(value, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


def format_phase_table(table: dict, stats: dict | None = None, pixel_size=None) -> list[str]:
    """The phase table as aligned text lines, in physical units.

    Parameters
    ----------
    table : dict
        A :func:`phase_table` (area, area fraction and its interval per phase).
    stats : dict, optional
        :func:`core.measure.statistics.phase_statistics` of the same phases: adds the
        particle count and the mean equivalent-circle diameter.
    pixel_size : PixelSize, optional
        The size the tables were made with (unknown: pixels).

    Returns
    -------
    list of str
        A header and one line per phase ("bg" for phase 0).
    """
    size = pixel_size or PixelSize.pixels()
    length = "µm" if size.known else "px"
    columns = [
        ("phase", 5),
        (f"area ({length}²)", 12),
        ("fraction (%)", 12),
        ("95% CI (%)", 14),
        ("particles", 9),
        (f"mean ECD ({length})", 13),
    ]
    rows = {int(p): i for i, p in enumerate(stats["phase"])} if stats is not None else {}
    ecd = f"ecd_mean{size.suffix(1)}"
    lines = ["  ".join(f"{name:>{width}}" for name, width in columns)]
    for i, p in enumerate(table["phase"]):
        j = rows.get(int(p))
        ci = (
            f"[{_cell(table['area_fraction_ci_low'][i], '.1f')}, "
            f"{_cell(table['area_fraction_ci_high'][i], '.1f')}]"
        )
        cells = [
            "bg" if p == 0 else str(int(p)),
            _cell(float(table[f"area{size.suffix(2)}"][i]), ".3g"),
            _cell(float(table["area_fraction"][i]), ".1f"),
            ci,
            "-" if j is None else str(int(stats["count"][j])),
            "-" if j is None else _cell(float(stats[ecd][j]), ".3g"),
        ]
        lines.append("  ".join(f"{c:>{w}}" for c, (_, w) in zip(cells, columns, strict=True)))
    return lines


def save_report(table, out_csv: str | Path, out_png: str | Path | None = None) -> None:
    write_table_csv(table, out_csv)
    if out_png is not None:
        fraction_chart(
            table["phase"],
            table["area_fraction"],
            out_png,
            low=table.get("area_fraction_ci_low"),
            high=table.get("area_fraction_ci_high"),
        )


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
