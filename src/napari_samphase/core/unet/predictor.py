"""Phase maps from a trained U-Net: ``predict(checkpoint, image) -> labels``.

The image goes through the checkpoint's own input conversion and normalisation
(:mod:`.inputs`), overlap-tile inference (:mod:`.inference`), and each pixel takes the
training labels' value of its most probable class. Importing this module does not
import torch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.progress import ProgressCallback
from napari_samphase.core.unet.inference import BATCH, TILE, predict_tiled


def _label_dtype(classes: np.ndarray):
    """The smallest unsigned type holding every class value (uint8 for 0..255)."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if classes.max(initial=0) <= np.iinfo(dtype).max:
            return dtype
    return np.int64


class UNetPredictor:
    """A trained U-Net with its class values, names and input normalisation.

    Parameters
    ----------
    model
        The :class:`.model.UNet`.
    meta
        Its checkpoint metadata (:func:`.checkpoint.load_unet`): ``classes``,
        ``class_names``, ``normalisation``.
    """

    def __init__(self, model, meta: dict) -> None:
        self.model = model.eval()
        self.meta = meta
        self.classes = np.asarray(meta["classes"], np.int64)
        self.class_names = list(meta.get("class_names") or [str(c) for c in self.classes])
        self.normalisation = dict(meta["normalisation"])
        if len(self.classes) != model.config.classes:
            raise InputError(
                f"{len(self.classes)} class values for a network with "
                f"{model.config.classes} outputs"
            )

    @classmethod
    def from_checkpoint(cls, path: str | Path, device="auto") -> UNetPredictor:
        """Load :func:`.checkpoint.save_unet`'s file (``InputError`` if unusable)."""
        from napari_samphase.core.unet.checkpoint import load_unet

        return cls(*load_unet(path, device=device))

    def probabilities(
        self,
        image: np.ndarray,
        tile: int = TILE,
        overlap: int = 0,
        batch: int = BATCH,
        progress: ProgressCallback | None = None,
    ) -> np.ndarray:
        """K x H x W float32 class probabilities of ``image`` (any size, gray or RGB)."""
        from napari_samphase.core.unet.inputs import model_input

        x = model_input(image, self.model.config.in_channels, self.normalisation)
        return predict_tiled(
            self.model, x, tile=tile, overlap=overlap, batch=batch, progress=progress
        )

    def predict(
        self,
        image: np.ndarray,
        probabilities: bool = False,
        tile: int = TILE,
        overlap: int = 0,
        batch: int = BATCH,
        progress: ProgressCallback | None = None,
    ):
        """The H x W phase label image (class values; uint8 when they fit), and with
        ``probabilities=True`` also the K x H x W probabilities.

        Parameters
        ----------
        image
            2D gray or H x W x 3|4 colour, any pixel type and size.
        probabilities
            Return ``(labels, probabilities)``.
        tile, overlap, batch
            Tiling (:func:`.inference.predict_tiled`).
        progress
            ``(tiles done, tiles, message)``; may raise ``Cancelled``.
        """
        probs = self.probabilities(image, tile, overlap, batch, progress)
        labels = self.classes[probs.argmax(0)].astype(_label_dtype(self.classes))
        return (labels, probs) if probabilities else labels


def predict(
    checkpoint_or_predictor,
    image: np.ndarray,
    probabilities: bool = False,
    device="auto",
    **tiling,
):
    """The phase label image a trained U-Net gives ``image``.

    Parameters
    ----------
    checkpoint_or_predictor
        A U-Net checkpoint file (``train_unet``'s output) or a :class:`UNetPredictor`.
    image
        2D gray or H x W x 3|4 colour, any pixel type and size.
    probabilities
        Also return the K x H x W class probabilities: ``(labels, probabilities)``.
    device
        For a checkpoint file: ``auto``, ``cpu``, ``cuda`` or ``mps``.
    **tiling
        ``tile``, ``overlap``, ``batch``, ``progress`` (:meth:`UNetPredictor.predict`).
    """
    predictor = checkpoint_or_predictor
    if not isinstance(predictor, UNetPredictor):
        predictor = UNetPredictor.from_checkpoint(predictor, device=device)
    return predictor.predict(image, probabilities=probabilities, **tiling)
