"""Size-distribution histograms per phase: drawn on a matplotlib Axes (the widget's dock
and the CLI's PNG share this) and tabulated for CSV.

Every phase is counted on the same bins, made by :func:`core.measure.statistics.
size_histogram` from all phases' sizes together, so phases compare bin by bin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_samphase.core.outputs.render import phase_color

# How a unit is written on an axis (column names keep the ASCII "um").
UNIT_LABELS = {"um": "µm", "px": "px"}
# Line widths and opacities: a highlighted phase stands out, the others fade.
STYLE = {"normal": (1.5, 0.9), "highlight": (2.8, 1.0), "faded": (1.0, 0.3)}


def _measurable(values, bins: str) -> np.ndarray:
    """Finite sizes (and positive ones on log bins, where 0 has no place)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    return v[v > 0] if bins == "log" else v


def common_edges(sizes_by_phase: dict, bins: str = "log", n_bins: int = 20) -> np.ndarray | None:
    """Bin edges for every phase's sizes at once; None when there are no sizes."""
    from napari_samphase.core.measure.statistics import size_histogram

    pooled = [_measurable(v, bins) for v in sizes_by_phase.values()]
    pooled = np.concatenate(pooled) if pooled else np.empty(0)
    if pooled.size == 0:
        return None
    edges, _ = size_histogram(pooled, bins=bins, n_bins=n_bins)
    return np.array(edges, np.float64)


def _counts(sizes_by_phase: dict, bins: str, n_bins: int):
    edges = common_edges(sizes_by_phase, bins, n_bins)
    if edges is None:
        return None, {}
    return edges, {
        int(p): np.histogram(_measurable(v, bins), edges)[0] for p, v in sizes_by_phase.items()
    }


def draw_size_histogram(
    ax,
    sizes_by_phase: dict[int, np.ndarray],
    unit: str,
    bins: str = "log",
    n_bins: int = 20,
    highlight: int | None = None,
    quantity: str = "ECD",
) -> None:
    """One step histogram per phase in its phase colour on ``ax``.

    Parameters
    ----------
    ax : matplotlib Axes
        Drawn on (cleared first).
    sizes_by_phase : dict
        Phase id -> sizes (e.g. equivalent-circle diameters) in ``unit``; a phase
        without sizes draws nothing.
    unit : str
        ``"um"`` or ``"px"``: the axis label names it.
    bins, n_bins : str, int
        ``"log"`` (log-spaced bins, log axis) or ``"linear"``; how many bins.
    highlight : int, optional
        This phase drawn bold and the others faded.
    quantity : str
        What the sizes are, for the axis label.
    """
    ax.clear()
    edges, counts = _counts(sizes_by_phase, bins, n_bins)
    for p, c in counts.items():
        if not c.sum():
            continue
        key = "normal" if highlight is None else "highlight" if p == highlight else "faded"
        width, alpha = STYLE[key]
        ax.stairs(c, edges, label=f"phase {p}", color=phase_color(p), linewidth=width, alpha=alpha)
    if edges is None:
        ax.text(0.5, 0.5, "no particles measured", ha="center", va="center",
                transform=ax.transAxes)  # fmt: skip
    elif bins == "log":
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log")
        # plain numbers (0.5, 1, 2), not powers of ten: size ranges span a decade or two
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter("")
    if edges is not None:
        from matplotlib.ticker import MaxNLocator

        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts are whole
    ax.set_xlabel(f"{quantity} ({UNIT_LABELS.get(unit, unit)})")
    ax.set_ylabel("particles")
    if counts:
        ax.legend(frameon=False, fontsize="small")


def histogram_table(sizes_by_phase, unit: str, bins: str = "log", n_bins: int = 20) -> dict:
    """The histograms as columns: ``phase``, ``bin_low_<unit>``, ``bin_high_<unit>``,
    ``count``; one row per phase and bin, every phase on the same bins (the last bin
    includes its upper edge, so each measured size is counted once)."""
    edges, counts = _counts(sizes_by_phase, bins, n_bins)
    low, high = f"bin_low_{unit}", f"bin_high_{unit}"
    if edges is None:
        return {"phase": np.empty(0, np.int64), low: np.empty(0), high: np.empty(0),
                "count": np.empty(0, np.int64)}  # fmt: skip
    phases = sorted(counts)
    n = len(edges) - 1
    return {
        "phase": np.repeat(np.array(phases, np.int64), n),
        low: np.tile(edges[:-1], len(phases)),
        high: np.tile(edges[1:], len(phases)),
        "count": np.concatenate([counts[p] for p in phases]).astype(np.int64),
    }


def save_size_histogram(sizes_by_phase, unit: str, path_png: str | Path, **kw) -> None:
    """:func:`draw_size_histogram` on a figure of its own, saved as PNG; ``kw`` go to it
    (``bins``, ``n_bins``, ``highlight``, ``quantity``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.0, 3.4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    draw_size_histogram(ax, sizes_by_phase, unit, **kw)
    ax.set_title("Size distribution per phase")
    fig.tight_layout()
    fig.savefig(path_png)
