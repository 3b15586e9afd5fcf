"""The U-Net's architecture (:class:`UNetConfig`, saved in its checkpoints) and the
shape arithmetic of its convolutions. Importing this module does not import torch.

``depth`` counts resolution levels: ``depth - 1`` max-poolings, the channels doubling
from ``width`` at each level down (the original network is depth 5, width 64).

Same convolutions keep the size (the network pads any input to a multiple of
:attr:`UNetConfig.factor` and crops the output back). Valid convolutions shrink it by
:attr:`UNetConfig.margin` on each side, and only some input sizes are valid (every
feature map must be even before a pooling): 572 -> 388 for the original network.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_samphase.core.errors import InputError, check_choice

PADDINGS = ("same", "valid")


@dataclass(frozen=True)
class UNetConfig:
    """Everything the network's shape depends on."""

    in_channels: int = 1  # 1: gray, 3: RGB
    classes: int = 2  # K output logits
    depth: int = 4  # resolution levels (depth - 1 poolings)
    width: int = 16  # channels at the first level, doubling at each level down
    batch_norm: bool = True
    padding: str = "same"  # same | valid convolutions
    dropout: float = 0.0  # before the deepest level's output, as in the method

    @property
    def factor(self) -> int:
        """Total down-sampling: inputs of the same network are multiples of this;
        tiles move by multiples of it so pooling sees the same pixels together."""
        return 2 ** (self.depth - 1)

    @property
    def margin(self) -> int:
        """Pixels each side that valid convolutions remove: every 3x3 convolution at
        level ``l`` costs ``2**l`` full-resolution pixels, two per level going down,
        two at the bottom and two per level coming up."""
        return 6 * self.factor - 4

    @property
    def context(self) -> int:
        """Pixels each side an output pixel depends on, for inputs that start at a
        multiple of :attr:`factor` (so pooling groups the same pixels): valid, exactly
        :attr:`margin`; same, the margin rounded up to a multiple of the factor
        (outputs closer than that to an input's edge see its zero padding)."""
        if self.padding == "valid":
            return self.margin
        return -(-self.margin // self.factor) * self.factor

    def output_shape(self, input_shape: tuple[int, int]) -> tuple[int, int]:
        """The logits' (H, W) for an (H, W) input; :class:`InputError` for an input
        size valid convolutions cannot take (see :meth:`valid_input`)."""
        return tuple(self._output_size(int(n)) for n in input_shape[-2:])

    def _output_size(self, n: int) -> int:
        size = self._size_through(n)
        if size is None:
            raise InputError(
                f"{n} px is not a valid input size for this U-Net with valid "
                f"convolutions (nearest larger valid size: {self.valid_input(n)})"
            )
        return size

    def _size_through(self, n: int) -> int | None:
        """The output size of an ``n`` px valid-convolution input, None if invalid."""
        if self.padding == "same":
            return n
        size = n
        for _ in range(self.depth - 1):
            size -= 4  # two 3x3 convolutions
            if size <= 0 or size % 2:  # pooling needs an even size
                return None
            size //= 2
        size -= 4  # the deepest level
        if size <= 0:
            return None
        for _ in range(self.depth - 1):
            size = 2 * size - 4  # up-convolution, then two 3x3 convolutions
            if size <= 0:
                return None
        return size

    def valid_input(self, size: int) -> int:
        """The smallest input size >= ``size`` the network takes without padding
        (same: a multiple of :attr:`factor`)."""
        f = self.factor
        if self.padding == "same":
            return max(-(-int(size) // f), 1) * f
        # valid sizes step by f from the smallest one
        smallest = self._smallest_valid()
        if size <= smallest:
            return smallest
        return smallest + -(-(int(size) - smallest) // f) * f

    def _smallest_valid(self) -> int:
        n = 1
        while self._size_through(n) is None:
            n += 1
        return n


def check_unet_config(config: UNetConfig) -> UNetConfig:
    """``config`` if the network can be built; one :class:`InputError` otherwise."""
    check_choice(config.padding, PADDINGS, "padding")
    if config.in_channels not in (1, 3):
        raise InputError(f"in_channels must be 1 (gray) or 3 (RGB), not {config.in_channels!r}")
    for name, low in (("classes", 2), ("depth", 1), ("width", 1)):
        value = getattr(config, name)
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise InputError(f"{name} must be a whole number >= {low}, not {value!r}")
    if not isinstance(config.batch_norm, bool | np.bool_):
        raise InputError(f"batch_norm must be True or False, not {config.batch_norm!r}")
    if not 0.0 <= config.dropout < 1.0:
        raise InputError(f"dropout must be in [0, 1), not {config.dropout}")
    return config
