"""napari-independent pictures: mask overlay, phase overlay, phase-fraction bar chart."""

from __future__ import annotations

import numpy as np

from napari_samphase.core.image.convert import to_rgb_uint8

# Fixed, distinguishable phase colours (Okabe-Ito, colour-blind safe), then tab20.
PHASE_COLORS = np.array(
    [
        [0.000, 0.447, 0.698],
        [0.902, 0.624, 0.000],
        [0.000, 0.620, 0.451],
        [0.800, 0.475, 0.655],
        [0.337, 0.706, 0.914],
        [0.835, 0.369, 0.000],
        [0.941, 0.894, 0.259],
        [0.500, 0.500, 0.500],
    ]
)
BACKGROUND_COLOR = np.array([0.0, 0.0, 0.0])


def phase_color(phase: int) -> np.ndarray:
    """RGB in [0, 1] for phase id ``phase`` (0 = background, black)."""
    if phase <= 0:
        return BACKGROUND_COLOR
    if phase <= len(PHASE_COLORS):
        return PHASE_COLORS[phase - 1]
    import matplotlib

    return np.asarray(matplotlib.colormaps["tab20"](phase % 20)[:3])


def phase_hex(phase: int) -> str:
    r, g, b = (np.round(phase_color(phase) * 255)).astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"


def mask_overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """Image with every mask filled in a random colour and its outline drawn."""
    from skimage.color import label2rgb
    from skimage.segmentation import find_boundaries

    rgb = to_rgb_uint8(image)
    over = label2rgb(labels, rgb, alpha=alpha, bg_label=0, image_alpha=1.0, kind="overlay")
    over[find_boundaries(labels, mode="inner")] = (1.0, 1.0, 0.0)
    return (np.clip(over, 0, 1) * 255).astype(np.uint8)


def phase_overlay(image: np.ndarray, phase_labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Image tinted by phase colour (background pixels keep the image)."""
    rgb = to_rgb_uint8(image).astype(np.float32) / 255
    ids = np.unique(phase_labels)
    lut = np.zeros((int(ids.max(initial=0)) + 1, 3), np.float32)
    for p in ids:
        lut[p] = phase_color(int(p))
    color = lut[phase_labels]
    a = np.where(phase_labels[..., None] > 0, alpha, 0.0)
    return (np.clip(rgb * (1 - a) + color * a, 0, 1) * 255).astype(np.uint8)


def fraction_chart(
    phases, fractions, path, title: str = "Phase area fractions", low=None, high=None
) -> None:
    """Bar chart of area fraction (%) per phase, coloured like the overlay, saved as PNG;
    ``low`` and ``high`` (%, e.g. a 95% interval) drawn as error bars when given."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 3.0), dpi=120)
    ax = fig.subplots()
    names = [("background" if p == 0 else f"phase {p}") for p in phases]
    fractions = np.asarray(fractions, np.float64)
    yerr, top = None, fractions
    if low is not None and high is not None:
        # a NaN interval (one field) draws no bar
        yerr = np.nan_to_num(np.abs([fractions - np.asarray(low), np.asarray(high) - fractions]))
        top = fractions + yerr[1]
    bars = ax.bar(
        names,
        fractions,
        yerr=yerr,
        capsize=4,
        color=[phase_color(int(p)) for p in phases],
        edgecolor="black",
    )
    ax.bar_label(bars, fmt="%.1f%%", padding=2)
    ax.set_ylabel("area fraction (%)" + (" with 95% CI" if yerr is not None else ""))
    ax.set_ylim(0, float(np.max(top, initial=1)) * 1.2)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
