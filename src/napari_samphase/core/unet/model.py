"""The U-Net (Ronneberger et al. 2015): a contracting path of double 3x3 convolutions
and 2x2 max-pooling, an expanding path of 2x2 transposed convolutions whose output is
concatenated with the contracting path's features at the same level (centre-cropped
for valid convolutions), and a 1x1 convolution to one logit per class.

Imports torch: import this module inside functions (:mod:`.config` does not).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from napari_samphase.core.unet.config import UNetConfig, check_unet_config

__all__ = ["UNet", "UNetConfig"]


def _block(cin: int, cout: int, config: UNetConfig) -> nn.Sequential:
    """Two 3x3 convolutions, each followed by batch norm (optional) and ReLU."""
    pad = 1 if config.padding == "same" else 0
    layers: list[nn.Module] = []
    for c in (cin, cout):
        # no bias before batch norm: it would be cancelled by the normalisation
        layers.append(nn.Conv2d(c, cout, 3, padding=pad, bias=not config.batch_norm))
        if config.batch_norm:
            layers.append(nn.BatchNorm2d(cout))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def _centre_crop(x: torch.Tensor, shape) -> torch.Tensor:
    dy, dx = (x.shape[-2] - shape[0]) // 2, (x.shape[-1] - shape[1]) // 2
    return x[..., dy : dy + shape[0], dx : dx + shape[1]]


class UNet(nn.Module):
    """``forward(x: N x in_channels x H x W) -> N x classes x H' x W'`` logits.

    Same padding: ``H' = H`` for any ``H`` (the input is zero-padded to a multiple of
    ``config.factor`` and the logits cropped back). Valid padding: ``H' = H - 2 *
    config.margin`` for the sizes ``config.valid_input`` gives.

    Parameters
    ----------
    config
        The architecture (checked here: a bad one raises ``InputError``).
    """

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = check_unet_config(config)
        widths = [config.width * 2**level for level in range(config.depth)]
        self.down = nn.ModuleList()
        cin = config.in_channels
        for w in widths:
            self.down.append(_block(cin, w, config))
            cin = w
        self.dropout = nn.Dropout2d(config.dropout) if config.dropout else nn.Identity()
        self.upconv = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.upconv.append(nn.ConvTranspose2d(2 * w, w, 2, stride=2))
            self.up.append(_block(2 * w, w, config))
        self.head = nn.Conv2d(widths[0], config.classes, 1)

    @property
    def context(self) -> int:
        """See :attr:`UNetConfig.context`."""
        return self.config.context

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if self.config.padding == "same":
            f = self.config.factor
            x = F.pad(x, (0, -w % f, 0, -h % f))
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = self.dropout(skips.pop())
        for upconv, block in zip(self.upconv, self.up, strict=True):
            x = upconv(x)
            x = block(torch.cat([_centre_crop(skips.pop(), x.shape[-2:]), x], 1))
        x = self.head(x)
        if self.config.padding == "same":
            x = x[..., :h, :w]
        return x
