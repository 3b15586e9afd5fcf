"""Learned input adapters: what SAM's image encoder is shown of a micrograph.

SAM was trained on RGB photographs; a gray micrograph is shown to it as its gray
value stacked into three channels. A fine-tuned model may instead carry a small
learned adapter, ``sam.input_adapter``, that maps the gray image (0..255) to three
channels (0..255) before SAM's own normalisation. It starts as exact channel
stacking, so fine-tuning begins from the base model's behaviour, and its weights
are part of ``sam.state_dict()`` (``input_adapter.*``): checkpoints name the kind
(``loading.save_checkpoint``) and ``loading.load_model`` attaches it again.

Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from napari_samphase.core.errors import InputError, check_choice
from napari_samphase.core.image.convert import LUMA

ATTRIBUTE = "input_adapter"  # the submodule's name on a Sam (and its state-dict prefix)
HIDDEN = 8  # hidden channels of the gray adapter


def _no_adapter():
    return None


def _gray_adapter():
    return _gray_adapter_class()()


# kind -> builder of a fresh (step-0) adapter module, or None for no adapter
ADAPTERS: dict[str, Callable] = {"none": _no_adapter, "gray": _gray_adapter}


@cache
def _gray_adapter_class():
    """Defined on first use: torch is imported here, not when the module is."""
    import torch
    from torch import nn

    class GrayAdapter(nn.Module):
        """1 -> 3 channels: ``gray + conv(act(conv(gray)))``, 3x3 convolutions with
        replicate padding (the size is kept), values in SAM's 0..255 pixel scale.

        At step 0 the residual is exactly zero on any device and in any conv
        algorithm (every product in it has a zero factor), so the output is the gray
        value in all three channels, bit for bit. Yet every parameter tensor gets a
        gradient at once: half of the hidden channels start with zero input weights
        and random output weights (the leaky ReLU passes gradient at 0 to their input
        weights), the other half the other way round (random, live input weights;
        zero output weights, which get the gradient). After one step every single
        weight is live.
        """

        kind = "gray"

        def __init__(self, hidden: int = HIDDEN) -> None:
            super().__init__()
            if hidden < 2:
                raise InputError(f"the gray adapter needs at least 2 hidden channels, not {hidden}")
            self.conv1 = nn.Conv2d(1, hidden, 3, padding=1, padding_mode="replicate")
            self.act = nn.LeakyReLU(0.1)
            self.conv2 = nn.Conv2d(hidden, 3, 3, padding=1, padding_mode="replicate")
            half = hidden // 2
            with torch.no_grad():
                self.conv1.weight[:half].zero_()
                self.conv1.bias[:half].zero_()
                self.conv2.weight[:, half:].zero_()
                self.conv2.bias.zero_()

        def forward(self, gray):
            """B x 1 x H x W gray (0..255) -> B x 3 x H x W (0..255)."""
            return gray + self.conv2(self.act(self.conv1(gray)))

    return GrayAdapter


def __getattr__(name: str):
    if name == "GrayAdapter":  # the class, built (and torch imported) on first access
        return _gray_adapter_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_adapter(kind: str):
    """A fresh step-0 adapter module of ``kind`` (None for ``"none"``).

    Parameters
    ----------
    kind
        One of :data:`ADAPTERS`.
    """
    check_choice(kind, ADAPTERS, "input adapter")
    return ADAPTERS[kind]()


def adapter_name(sam) -> str:
    """The kind of ``sam``'s input adapter: ``"none"`` or a key of :data:`ADAPTERS`."""
    module = getattr(sam, ATTRIBUTE, None)
    return "none" if module is None else module.kind


def attach_adapter(sam, kind: str):
    """Give ``sam`` a fresh (step-0) input adapter of ``kind``; returns ``sam``.

    The adapter becomes the registered submodule ``sam.input_adapter`` on ``sam``'s
    device, so its weights are saved and loaded with the model's. An adapter ``sam``
    already has is kept with its learned weights: ``"none"`` or its own kind change
    nothing, and another kind is refused.

    Parameters
    ----------
    sam
        A segment_anything ``Sam``.
    kind
        One of :data:`ADAPTERS`.
    """
    check_choice(kind, ADAPTERS, "input adapter")
    current = adapter_name(sam)
    if kind in ("none", current):
        return sam
    if current != "none":
        raise InputError(
            f"the model already has a {current!r} input adapter; it cannot take a {kind!r} one"
        )
    module = make_adapter(kind)
    module.to(next(sam.parameters()).device).train(sam.training)
    setattr(sam, ATTRIBUTE, module)
    return sam


def luma_channel(x):
    """B x 3 x H x W RGB -> B x 1 x H x W gray with the package's :data:`LUMA` weights.

    Written as offsets from red (the weights sum to 1), so a gray pixel (R = G = B)
    gives its own value exactly, whatever the float rounding.
    """
    red = x[:, 0:1]
    return red + float(LUMA[1]) * (x[:, 1:2] - red) + float(LUMA[2]) * (x[:, 2:3] - red)


def encoder_input(sam, x):
    """What ``sam.image_encoder`` takes for ``x``: its gray through the input adapter
    if ``sam`` has one, then SAM's normalisation and padding (``sam.preprocess``).

    Differentiable (the trainer calls it too); without an adapter it is exactly
    ``sam.preprocess(x)``.

    Parameters
    ----------
    sam
        A segment_anything ``Sam``, with or without ``input_adapter``.
    x
        B x 3 x h x w float tensor in 0..255 on ``sam``'s device, resized so that
        its longest side is ``sam.image_encoder.img_size`` and not padded.
    """
    module = getattr(sam, ATTRIBUTE, None)
    if module is not None:
        x = module(luma_channel(x))
    return sam.preprocess(x)


__all__ = [
    "ADAPTERS",
    "ATTRIBUTE",
    "adapter_name",
    "attach_adapter",
    "encoder_input",
    "luma_channel",
    "make_adapter",
]
