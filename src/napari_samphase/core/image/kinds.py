"""Generated micrographs of several kinds, with known phase truth.

The particles-in-matrix images of :mod:`synthetic` are one kind of micrograph; a
phase map has to work on others too. Each generator here is seeded, takes well
under a second at 256 x 256 and returns ``(image uint8, phase truth uint8)`` with
classes 0..n-1 (0 is the matrix or the majority phase):

- ``particles``: particles of two phases in a matrix (:func:`make_micrograph`);
- ``texture``: two phases of equal mean gray that differ only by the grain size of
  their texture (fine speckle vs coarse mottling);
- ``lamellae``: pearlite-like colonies (lamellae, a random orientation per colony)
  among flat ferrite-like grains, both of equal mean gray;
- ``network``: a bright grain-boundary network on grains of varying gray;
- ``cracks``: a textured coating with pores and thin dark cracks, on a substrate.

All share the acquisition of :mod:`synthetic`: blur, noise and a shading ramp.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from napari_samphase.core.image.synthetic import PhaseStyle, _texture, make_micrograph

SIZE = 256


def _acquire(image, rng, blur=1.0, noise=0.03, gradient=0.05) -> np.ndarray:
    """Shading ramp, optics blur and shot noise; float [0, 1] -> uint8."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    image = image + gradient * ((np.cos(direction) * xx / w + np.sin(direction) * yy / h) - 0.5)
    if blur > 0:
        image = ndi.gaussian_filter(image, blur)
    image = image + noise * rng.standard_normal(image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def _field(shape, scale: float, rng) -> np.ndarray:
    """Unit-variance Gaussian random field with correlation length ``scale``."""
    return _texture(shape, PhaseStyle("field", 0.0, 1.0, scale), rng)


def _grains(shape, n: int, rng, rough: float = 4.0) -> np.ndarray:
    """Voronoi grains 0..n-1 with wavy boundaries (coordinates warped by a smooth field)."""
    h, w = shape
    seeds = np.zeros(shape, bool)
    seeds[rng.integers(0, h, n), rng.integers(0, w, n)] = True
    _, (ri, ci) = ndi.distance_transform_edt(~seeds, return_indices=True)
    ids = np.cumsum(seeds.ravel()).reshape(shape) - 1  # seed pixel -> grain index
    rr, cc = np.indices(shape)
    rr = np.clip(rr + rough * _field(shape, 12.0, rng), 0, h - 1).astype(int)
    cc = np.clip(cc + rough * _field(shape, 12.0, rng), 0, w - 1).astype(int)
    return ids[ri[rr, cc], ci[rr, cc]]


def _boundaries(grains: np.ndarray, width: int) -> np.ndarray:
    edge = np.zeros(grains.shape, bool)
    edge[:-1] |= grains[:-1] != grains[1:]
    edge[:, :-1] |= grains[:, :-1] != grains[:, 1:]
    return ndi.binary_dilation(edge, iterations=max(width // 2, 0)) if width > 1 else edge


def particles(seed: int, size: int = SIZE):
    """Particles of two phases (dark, bright) in a textured matrix: 3 classes."""
    m = make_micrograph((size, size), n_particles=30, n_phases=2, radius=(8.0, 22.0), seed=seed)
    return m.image, m.phases


def texture(seed: int, size: int = SIZE):
    """Two domains of equal mean gray: fine speckle (1) vs coarse mottling (0)."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    truth = (_field(shape, 18.0, rng) > 0).astype(np.uint8)
    coarse = _field(shape, 4.0, rng)
    fine = _field(shape, 0.8, rng)
    image = 0.5 + 0.1 * np.where(truth == 1, fine, coarse)
    return _acquire(image, rng, blur=0.7), truth


def lamellae(seed: int, size: int = SIZE):
    """Pearlite-like colonies (1): lamellae of period 5-8 px, one orientation per
    colony; ferrite-like grains (0) flat with slight shading; equal mean gray;
    faint dark grain boundaries everywhere."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    n = max(8, size * size // 2500)
    grains = _grains(shape, n, rng)
    is_colony = rng.random(n) < 0.45
    is_colony[rng.integers(n)] = True  # never an image without pearlite
    truth = is_colony[grains].astype(np.uint8)
    rr, cc = np.indices(shape).astype(np.float32)
    angle, period, phase = rng.uniform(0, np.pi, n), rng.uniform(5, 8, n), rng.uniform(0, 6.3, n)
    g = grains
    stripes = np.sin(
        2 * np.pi * (np.cos(angle[g]) * rr + np.sin(angle[g]) * cc) / period[g] + phase[g]
    )
    shade = rng.uniform(-0.03, 0.03, n)[g]
    image = 0.55 + shade + np.where(truth == 1, 0.18 * stripes, 0.0)
    image = image + 0.02 * _field(shape, 1.5, rng)
    image[_boundaries(grains, 1)] -= 0.12
    return _acquire(image, rng), truth


def network(seed: int, size: int = SIZE):
    """A bright boundary network (1, 3 px wide) on grains (0) whose gray varies from
    grain to grain (the grain contrast of an etched section)."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    n = max(8, size * size // 1800)
    grains = _grains(shape, n, rng)
    truth = _boundaries(grains, 3).astype(np.uint8)
    image = rng.uniform(0.25, 0.6, n)[grains] + 0.03 * _field(shape, 2.0, rng)
    image = np.where(truth == 1, 0.82 + 0.03 * _field(shape, 1.0, rng), image)
    return _acquire(image, rng), truth


def _crack(shape, rng) -> np.ndarray:
    """A crack from the surface downwards: a jittered random walk, 1-3 px wide."""
    h, w = shape
    out = np.zeros(shape, bool)
    r, c = 0.0, rng.uniform(0.05, 0.95) * w
    heading = np.pi / 2 + rng.normal(0, 0.3)
    length = rng.uniform(0.4, 0.8) * h
    width = int(rng.integers(1, 4))
    for _ in range(int(length)):
        heading += rng.normal(0, 0.15)
        heading = np.clip(heading, 0.2, np.pi - 0.2)
        r, c = r + np.sin(heading), c + np.cos(heading)
        ri, ci = int(r), int(c)
        if not (0 <= ri < h and 0 <= ci < w):
            break
        out[ri, max(ci - width // 2, 0) : ci + (width + 1) // 2] = True
    return out


def cracks(seed: int, size: int = SIZE):
    """A coating (0, mottled, with dark pores) over a bright smooth substrate (1),
    cut by thin dark cracks (2) running down from the surface."""
    rng = np.random.default_rng(seed)
    shape = (size, size)
    h, w = shape
    interface = h * rng.uniform(0.65, 0.8) + 6 * _field((1, w), 15.0, rng)[0]
    truth = (np.arange(h)[:, None] > interface[None, :]).astype(np.uint8)
    image = np.where(truth == 1, 0.78, 0.55) + np.where(
        truth == 1, 0.02 * _field(shape, 2.0, rng), 0.06 * _field(shape, 2.5, rng)
    )
    pores = (_field(shape, 2.0, rng) > 2.6) & (truth == 0)
    image[pores] = 0.3
    crack = np.zeros(shape, bool)
    for _ in range(int(rng.integers(3, 7))):
        crack |= _crack(shape, rng)
    crack &= truth == 0  # cracks stop at the substrate
    truth[crack] = 2
    image[crack] = 0.15
    return _acquire(image, rng), truth


KINDS: dict[str, Callable[[int], tuple[np.ndarray, np.ndarray]]] = {
    "particles": particles,
    "texture": texture,
    "lamellae": lamellae,
    "network": network,
    "cracks": cracks,
}
