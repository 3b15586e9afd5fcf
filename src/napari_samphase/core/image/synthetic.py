"""Synthetic micrographs with known instances and phases.

Particles of several phases (distinct gray level and texture) sit in a textured
matrix, with blur, noise and an illumination gradient. Used as the plugin's
sample data, to train the ``demo-synthetic`` SAM model and in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.image.units import PixelSize


@dataclass(frozen=True)
class PhaseStyle:
    name: str
    gray: float  # mean level in [0, 1]
    texture: float  # amplitude of the texture
    scale: float  # correlation length of the texture, pixels


MATRIX = PhaseStyle("matrix", 0.55, 0.03, 1.5)
PARTICLE_PHASES = (
    PhaseStyle("dark", 0.18, 0.02, 2.0),
    PhaseStyle("bright", 0.88, 0.02, 2.0),
    PhaseStyle("speckled", 0.35, 0.12, 1.0),
    PhaseStyle("mottled", 0.72, 0.10, 4.0),
)


@dataclass
class Micrograph:
    image: np.ndarray  # H x W uint8
    instances: np.ndarray  # H x W uint32, 0 = matrix
    phases: np.ndarray  # H x W uint8, 0 = matrix, k = PARTICLE_PHASES[k - 1]
    instance_phase: np.ndarray  # phase of instance i at index i (index 0: matrix)
    phase_names: tuple[str, ...]


def _blob(radius: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of an irregular, convex-ish particle (ellipse with harmonics)."""
    aspect = rng.uniform(1.0, 1.6)
    angle = rng.uniform(0, np.pi)
    r_max = int(np.ceil(radius * aspect * 1.25)) + 1
    yy, xx = np.mgrid[-r_max : r_max + 1, -r_max : r_max + 1].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * xx + s * yy, -s * xx + c * yy
    theta = np.arctan2(v, u)
    wobble = 1.0 + sum(
        rng.uniform(0.0, 0.08) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in (3, 4, 5)
    )
    rho = np.sqrt((u / aspect) ** 2 + v**2)
    return rho <= radius * wobble


def _texture(shape: tuple[int, int], style: PhaseStyle, rng: np.random.Generator) -> np.ndarray:
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), style.scale)
    noise /= noise.std() + 1e-6
    return style.gray + style.texture * noise


def make_micrograph(
    shape: tuple[int, int] = (512, 512),
    n_particles: int = 60,
    n_phases: int = 3,
    radius: tuple[float, float] = (8.0, 28.0),
    noise: float = 0.03,
    blur: float = 1.0,
    gradient: float = 0.05,
    gap: int = 3,
    seed: int | None = 0,
    styles: tuple[PhaseStyle, ...] | None = None,
) -> Micrograph:
    """Generate one micrograph; ``n_particles`` is a target (placement may fit fewer).

    ``styles``: matrix style followed by one style per particle phase; default
    :data:`MATRIX` and the first ``n_phases`` of :data:`PARTICLE_PHASES`.
    """
    if styles is None:
        if not 1 <= n_phases <= len(PARTICLE_PHASES):
            raise ValueError(f"n_phases must be in 1..{len(PARTICLE_PHASES)}")
        styles = (MATRIX, *PARTICLE_PHASES[:n_phases])
    n_phases = len(styles) - 1
    rng = np.random.default_rng(seed)
    h, w = shape
    instances = np.zeros(shape, np.uint32)
    occupied = np.zeros(shape, bool)
    instance_phase = [0]
    tries = 0
    while len(instance_phase) - 1 < n_particles and tries < n_particles * 30:
        tries += 1
        # Log-uniform radius: many small particles, a few large ones.
        r = float(np.exp(rng.uniform(np.log(radius[0]), np.log(radius[1]))))
        blob = _blob(r, rng)
        bh, bw = blob.shape
        y0 = int(rng.integers(-bh // 3, h - 2 * bh // 3))
        x0 = int(rng.integers(-bw // 3, w - 2 * bw // 3))
        ys, xs = slice(max(y0, 0), min(y0 + bh, h)), slice(max(x0, 0), min(x0 + bw, w))
        part = blob[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0]
        if part.sum() < 0.5 * blob.sum():  # mostly outside the image
            continue
        if (occupied[ys, xs] & part).any():
            continue
        label = len(instance_phase)
        instances[ys, xs][part] = label
        grown = ndi.binary_dilation(part, iterations=gap) if gap else part
        occupied[ys, xs] |= grown
        instance_phase.append(int(rng.integers(1, n_phases + 1)))
    instance_phase_arr = np.asarray(instance_phase, np.uint8)
    phases = instance_phase_arr[instances]

    image = _texture(shape, styles[0], rng)
    for k in range(1, n_phases + 1):
        sel = phases == k
        if sel.any():
            image[sel] = _texture(shape, styles[k], rng)[sel]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(direction) * xx / w + np.sin(direction) * yy / h) - 0.5
    image = image + gradient * ramp
    if blur > 0:
        image = ndi.gaussian_filter(image, blur)
    image = image + noise * rng.standard_normal(shape).astype(np.float32)
    image_u8 = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)
    names = tuple(p.name for p in styles)
    return Micrograph(image_u8, instances, phases.astype(np.uint8), instance_phase_arr, names)


def random_styles(n_phases: int, rng: np.random.Generator, min_contrast: float = 0.12):
    """Random matrix + phase styles, each phase visibly different from the matrix."""
    matrix = PhaseStyle("matrix", rng.uniform(0.2, 0.8), rng.uniform(0.0, 0.06), 1.5)
    styles = [matrix]
    while len(styles) <= n_phases:
        gray = rng.uniform(0.05, 0.95)
        texture = rng.choice([rng.uniform(0.0, 0.04), rng.uniform(0.06, 0.14)])
        if abs(gray - matrix.gray) < min_contrast and texture < 0.06:
            continue
        styles.append(PhaseStyle(f"phase{len(styles)}", gray, texture, rng.uniform(0.8, 4.0)))
    return tuple(styles)


# Nominal, not measured: the sample is generated, so any size is a convention. 50 nm/px
# makes its 256 px field 12.8 um wide and its particles 0.8-2.4 um across, the scale of
# secondary gamma' or carbides in an SEM image, so the sample's tables read in um.
SAMPLE_PIXEL_SIZE = PixelSize(0.05, "um", "sample (nominal)")


def sample_micrograph(seed: int = 0) -> Micrograph:
    """The plugin's sample: 256 x 256 (the demo model's native input size), 3 phases."""
    return make_micrograph((256, 256), n_particles=20, radius=(8.0, 24.0), seed=seed)
