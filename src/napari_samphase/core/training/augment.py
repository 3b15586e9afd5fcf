"""Augmentations for training: the 8 symmetries of the square, intensity jitter,
elastic deformation.

Micrographs have no up or down, so flips and 90-degree rotations give new views of
the same data for free; they move image and labels alike. Intensity jitter (small
gamma, contrast and brightness changes) touches the image only. Elastic deformation
(the U-Net method's main augmentation) bends image and labels alike by one smooth
random displacement field: :func:`elastic_field`, then :func:`warp` on each.
"""

from __future__ import annotations

import numpy as np

# The dihedral group of the square: (quarter turns counter-clockwise, then a
# left-right flip). Index 0 is the identity.
DIHEDRAL: tuple[tuple[int, bool], ...] = tuple(
    (turns, flip) for flip in (False, True) for turns in range(4)
)

GAMMA = 0.15  # gamma factor in [1 / (1 + g), 1 + g]
CONTRAST = 0.1  # contrast factor in [1 - c, 1 + c] around the image mean
BRIGHTNESS = 0.05  # offset in [-b, b] x the full range


def dihedral(array: np.ndarray, index: int) -> np.ndarray:
    """Transform ``index`` (0..7, see :data:`DIHEDRAL`) of an H x W (x C) array."""
    turns, flip = DIHEDRAL[index]
    out = np.rot90(array, turns, axes=(0, 1))
    if flip:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def intensity_jitter(
    image: np.ndarray,
    rng: np.random.Generator,
    gamma: float = GAMMA,
    contrast: float = CONTRAST,
    brightness: float = BRIGHTNESS,
) -> np.ndarray:
    """A random small gamma, contrast and brightness change of a 0..255 image;
    float32 in 0..255 (the same change on every channel)."""
    x = np.asarray(image, np.float32) / 255.0
    g = np.exp(rng.uniform(-np.log1p(gamma), np.log1p(gamma)))
    c = rng.uniform(1.0 - contrast, 1.0 + contrast)
    b = rng.uniform(-brightness, brightness)
    x = np.power(np.clip(x, 0.0, 1.0), g)
    x = (x - x.mean()) * c + x.mean() + b
    return (np.clip(x, 0.0, 1.0) * 255.0).astype(np.float32)


ELASTIC_GRID = 3  # coarse grid points per side (the method's 3 x 3)
ELASTIC_SIGMA = 10.0  # px, standard deviation of the coarse displacements (the method's)
_SPLINE_PAD = 8  # px of context around a warped window: the cubic spline's prefilter
# reaches far in principle, but its weights fall by 0.27 a pixel (1e-5 at 8 px)


def elastic_field(
    shape: tuple[int, int],
    rng: np.random.Generator,
    grid: int = ELASTIC_GRID,
    sigma: float = ELASTIC_SIGMA,
) -> np.ndarray:
    """A smooth random displacement field, ``2 x H x W`` float32 (dy, dx) in px.

    Displacements drawn from ``normal(0, sigma)`` (first the ``2 x grid x grid`` coarse
    values, so a seeded ``rng`` gives the same field) at ``grid x grid`` points spread
    over the whole shape (corners included), interpolated bicubically (a cubic
    spline through them) to every pixel.

    Parameters
    ----------
    shape
        (H, W) of the field.
    rng
        The random source.
    grid
        Coarse grid points per side (>= 2).
    sigma
        Standard deviation of the coarse displacements, px.
    """
    from scipy import ndimage as ndi

    if grid < 2:
        raise ValueError(f"grid must be at least 2, not {grid}")
    h, w = shape
    coarse = rng.normal(0.0, sigma, (2, grid, grid))
    gy = np.linspace(0.0, grid - 1.0, h)
    gx = np.linspace(0.0, grid - 1.0, w)
    coords = np.stack(np.meshgrid(gy, gx, indexing="ij"))
    return np.stack(
        [ndi.map_coordinates(c, coords, order=3, mode="mirror") for c in coarse]
    ).astype(np.float32)


def crop_mirrored(array: np.ndarray, y0: int, x0: int, h: int, w: int) -> np.ndarray:
    """``array[y0:y0+h, x0:x0+w]`` for any start and size, mirrored beyond the array's
    edges (reflected about the edge pixels, scipy.ndimage's "mirror" mode)."""
    ah, aw = array.shape[:2]
    rows = _mirror_index(np.arange(y0, y0 + h), ah)
    cols = _mirror_index(np.arange(x0, x0 + w), aw)
    return array[rows[:, None], cols[None, :]]


def _mirror_index(i: np.ndarray, n: int) -> np.ndarray:
    """Indices reflected into 0..n-1 about the edge pixels (period 2n - 2)."""
    if n == 1:
        return np.zeros_like(i)
    period = 2 * n - 2
    i = np.mod(i, period)
    return np.where(i < n, i, period - i)


def warp(
    image: np.ndarray,
    field: np.ndarray,
    order: int = 3,
    origin: tuple[int, int] = (0, 0),
) -> np.ndarray:
    """``out[y, x] = image[origin + (y, x) + field[:, y, x]]``, mirrored at the edges.

    Parameters
    ----------
    image
        H x W or H x W x C array.
    field
        ``2 x h x w`` displacements (dy, dx), px (:func:`elastic_field`); the output is
        ``h x w`` (x C): the whole image, or a crop of it placed at ``origin``.
    order
        Spline order: 3 (bicubic) for images, 0 (nearest pixel) for labels and
        per-pixel weights, which must stay values of the input.
    origin
        (row, col) of the output's first pixel in the image; may lie outside it.

    Returns
    -------
    The warped array: float32 for ``order > 0``, the input's type for ``order=0``.
    """
    from scipy import ndimage as ndi

    image = np.asarray(image)
    h, w = field.shape[1:]
    coords = np.mgrid[0:h, 0:w].astype(np.float32)
    coords += field
    coords[0] += origin[0]
    coords[1] += origin[1]
    # only the window the coordinates reach (plus the spline's context) is filtered
    lo = np.floor(coords.reshape(2, -1).min(1)).astype(int) - _SPLINE_PAD
    hi = np.ceil(coords.reshape(2, -1).max(1)).astype(int) + _SPLINE_PAD + 1
    window = crop_mirrored(image, lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
    coords -= lo.astype(np.float32)[:, None, None]
    out_type = image.dtype if order == 0 else np.float32
    data = window.astype(np.float32 if order else image.dtype, copy=False)
    planes = [data] if data.ndim == 2 else [data[..., c] for c in range(data.shape[-1])]
    out = [
        ndi.map_coordinates(p, coords, order=order, mode="mirror", output=out_type) for p in planes
    ]
    return out[0] if data.ndim == 2 else np.stack(out, -1)
