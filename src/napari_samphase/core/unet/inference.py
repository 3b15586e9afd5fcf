"""Overlap-tile inference: any image size, memory bounded by the tile batch.

The image is mirror-padded at its borders and cut into tiles. Each tile's input is
larger than the part of its output that is kept by the model's *context* on each side
(:attr:`.config.UNetConfig.context`): valid convolutions drop it themselves; with same
convolutions it is where the zero padding of the tile's edge reaches, and it is
discarded. Tiles start at multiples of the pooling factor, so every tile pools the
same pixels together as one pass over the whole image would. With the full context,
tiled inference therefore equals that one pass (to float rounding).

The kept output tiles may also overlap (``overlap``); there, the probabilities are
averaged with a flat window (each pixel the plain mean of the tiles that cover it).
With the full context the tiles agree and overlap only costs time, so it defaults to
0; it smooths the seams of a ``margin`` smaller than the context.

Importing this module does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.progress import ProgressCallback, report

TILE = 512  # px, the network input per tile: 416 kept px of 512 at depth 4 (context 48)
BATCH = 4  # tiles per forward pass


@dataclass(frozen=True)
class _Axis:
    """How one image axis is cut: tiles of ``size`` input px each keep ``out`` px,
    start every ``stride`` px, ``count`` of them."""

    size: int
    out: int
    stride: int
    count: int
    skip: int  # px dropped at the start of each tile's output (same convolutions)

    @property
    def extent(self) -> int:  # output px the tiles cover
        return (self.count - 1) * self.stride + self.out


def _plan(n: int, config, tile: int, overlap: int, margin: int) -> _Axis:
    f = config.factor
    if config.padding == "valid":
        largest = config.valid_input(max(tile - f + 1, 1))
        if largest > tile:
            largest -= f
        need = config.valid_input(n + 2 * margin)  # one tile for the whole axis
        size = need if need <= largest else largest
        if size < config.valid_input(1):
            raise InputError(
                f"tile {tile} px is smaller than this U-Net's smallest input "
                f"({config.valid_input(1)} px with valid convolutions)"
            )
        out, skip = config.output_shape((size, size))[0], 0
    else:
        largest = tile // f * f
        size = min(config.valid_input(n + 2 * margin), largest)
        out, skip = size - 2 * margin, margin
        if out < f:
            raise InputError(
                f"tile {tile} px leaves no output beyond the {margin} px margin on each side "
                f"(use a tile of at least {2 * margin + f} px)"
            )
    if out >= n:
        return _Axis(size, out, out, 1, skip)
    stride = (out - overlap) // f * f
    if stride < f:
        raise InputError(f"overlap {overlap} px leaves no stride between tiles of {out} px")
    return _Axis(size, out, stride, -(-(n - out) // stride) + 1, skip)


def _check_margin(config, margin) -> int:
    if margin is None:
        return config.context
    if config.padding == "valid":
        if margin != config.margin:
            raise InputError(
                f"margin: valid convolutions fix it at {config.margin} px, not {margin}"
            )
        return margin
    if not isinstance(margin, int | np.integer) or margin < 0 or margin % config.factor:
        raise InputError(
            f"margin must be a multiple of the pooling factor {config.factor} px, not {margin!r}"
        )
    return int(margin)


def predict_tiled(
    model,
    image: np.ndarray,
    tile: int = TILE,
    overlap: int = 0,
    batch: int = BATCH,
    device=None,
    progress: ProgressCallback | None = None,
    margin: int | None = None,
) -> np.ndarray:
    """Class probabilities of a (normalised) image by overlapping tiles.

    Parameters
    ----------
    model
        A :class:`.model.UNet` (put in eval mode here for the duration).
    image
        ``C x H x W`` (or ``H x W`` for one channel) float array, normalised as the
        network was trained (:func:`.inputs.model_input`).
    tile
        Side of each tile's network input, px (rounded down to a size the network
        takes); small images take one smaller tile.
    overlap
        Extra overlap of the kept output tiles, px; averaged there (flat window).
    batch
        Tiles per forward pass: bounds the memory with the tile size.
    device
        Where to run (the model is moved there); default the model's device.
    progress
        ``(tiles done, tiles, message)``; may raise ``Cancelled`` between batches.
    margin
        Context discarded at each tile edge (same convolutions only, a multiple of the
        pooling factor); default the model's full context, which makes tiles exact.

    Returns
    -------
    K x H x W float32 probabilities (softmax over the K classes).
    """
    import torch

    config = model.config
    x = np.asarray(image, np.float32)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[0] != config.in_channels:
        raise InputError(
            f"the network takes {config.in_channels} x H x W images, not shape {image.shape}"
        )
    if not isinstance(tile, int | np.integer) or tile < 1:
        raise InputError(f"tile must be a positive whole number of px, not {tile!r}")
    if not isinstance(overlap, int | np.integer) or overlap < 0:
        raise InputError(f"overlap must be a whole number of px >= 0, not {overlap!r}")
    if not isinstance(batch, int | np.integer) or batch < 1:
        raise InputError(f"batch must be a whole number >= 1, not {batch!r}")
    margin = _check_margin(config, margin)
    h, w = x.shape[1:]
    if min(h, w) < 2:
        raise InputError(f"image too small for mirror padding ({h}x{w} px)")
    ay, ax = (_plan(n, config, int(tile), int(overlap), margin) for n in (h, w))
    # mirror padding: the context before the image, and after it what the last tiles
    # reach beyond it
    pad_y = (margin, ay.extent - h + ay.size - ay.out - margin)
    pad_x = (margin, ax.extent - w + ax.size - ax.out - margin)
    padded = np.pad(x, ((0, 0), pad_y, pad_x), mode="reflect")
    k = config.classes
    total = np.zeros((k, ay.extent, ax.extent), np.float32)
    count = np.zeros((ay.extent, ax.extent), np.float32)
    starts = [(i * ay.stride, j * ax.stride) for i in range(ay.count) for j in range(ax.count)]
    if device is not None:
        model.to(device)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    report(progress, 0, len(starts), f"tile 0/{len(starts)}")
    try:
        with torch.no_grad():
            for first in range(0, len(starts), batch):
                chunk = starts[first : first + batch]
                inputs = np.stack(
                    [padded[:, y : y + ay.size, x0 : x0 + ax.size] for y, x0 in chunk]
                )
                logits = model(torch.from_numpy(inputs).to(device))
                probs = logits.float().softmax(1)[
                    ..., ay.skip : ay.skip + ay.out, ax.skip : ax.skip + ax.out
                ]
                probs = probs.cpu().numpy()
                for p, (y, x0) in zip(probs, chunk, strict=True):
                    total[:, y : y + ay.out, x0 : x0 + ax.out] += p
                    count[y : y + ay.out, x0 : x0 + ax.out] += 1.0
                done = first + len(chunk)
                report(progress, done, len(starts), f"tile {done}/{len(starts)}")
    finally:
        model.train(was_training)
    total = total[:, :h, :w]
    total /= count[None, :h, :w]
    return np.ascontiguousarray(total)


def predict_labels(
    model,
    image: np.ndarray,
    classes,
    **tiling,
) -> np.ndarray:
    """``classes[argmax]`` of :func:`predict_tiled` (same parameters): an H x W image of
    the class values (e.g. the training labels' values, not 0..K-1).

    Parameters
    ----------
    model, image
        As in :func:`predict_tiled`.
    classes
        The value of each of the K outputs.
    **tiling
        ``tile``, ``overlap``, ``batch``, ``device``, ``progress``, ``margin``.
    """
    classes = np.asarray(classes)
    if classes.shape != (model.config.classes,):
        raise InputError(
            f"{len(classes)} class values given for a network with {model.config.classes} outputs"
        )
    return classes[predict_tiled(model, image, **tiling).argmax(0)]
