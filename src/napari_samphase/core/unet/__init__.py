"""A U-Net for supervised phase maps.

``config`` (:class:`UNetConfig`, shape arithmetic), ``model`` (:class:`UNet`; imports
torch), ``inputs`` (channels and normalisation), ``inference`` (overlap-tile
``predict_tiled``, ``predict_labels``), ``checkpoint`` (``save_unet``, ``load_unet``)
and ``predictor`` (``UNetPredictor``, ``predict(checkpoint, image) -> labels``).
Training lives in ``core.training.unet_trainer``. Importing this package does not
import torch.
"""
