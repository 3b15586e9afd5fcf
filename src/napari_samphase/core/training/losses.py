"""Losses for fine-tuning SAM: per-mask losses and the IoU head's.

Every function takes mask logits ``P x M x H x W`` (P prompts, M masks each) and
targets ``P x 1 x H x W`` (0/1, broadcast over M) and returns one value per mask,
``P x M``, so the trainer can pick the best of SAM's three outputs per prompt.
torch is imported inside the functions (the module is imported at CLI start-up).
"""

from __future__ import annotations

from collections.abc import Callable

FOCAL_ALPHA = 0.25  # SAM's focal loss (Lin et al.): alpha and gamma
FOCAL_GAMMA = 2.0
FOCAL_WEIGHT = 20.0  # SAM's paper: focal to dice 20:1


def soft_dice(logits, target, eps: float = 1.0):
    """1 - soft Dice of sigmoid(logits) and target, per mask."""
    prob = logits.sigmoid()
    inter = (prob * target).sum((-2, -1))
    total = prob.sum((-2, -1)) + target.sum((-2, -1))
    return 1.0 - (2.0 * inter + eps) / (total + eps)


def bce(logits, target):
    """Mean binary cross-entropy per mask."""
    import torch.nn.functional as F

    loss = F.binary_cross_entropy_with_logits(logits, target.expand_as(logits), reduction="none")
    return loss.mean((-2, -1))


def sigmoid_focal(logits, target, alpha: float = FOCAL_ALPHA, gamma: float = FOCAL_GAMMA):
    """Mean sigmoid focal loss per mask (the form SAM was trained with)."""
    import torch.nn.functional as F

    target = target.expand_as(logits)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.mean((-2, -1))


def _bce_dice(logits, target):
    return bce(logits, target) + soft_dice(logits, target)


def _focal_dice(logits, target):
    return FOCAL_WEIGHT * sigmoid_focal(logits, target) + soft_dice(logits, target)


# loss kind -> (logits P x M x H x W, target P x 1 x H x W) -> P x M
MASK_LOSSES: dict[str, Callable] = {"bce_dice": _bce_dice, "focal_dice": _focal_dice}


def mask_loss(logits, target, kind: str = "bce_dice"):
    """Per-mask loss of ``kind`` (a key of :data:`MASK_LOSSES`), P x M.

    Parameters
    ----------
    logits
        Mask logits, P x M x H x W.
    target
        Target masks (0/1 floats), P x 1 x H x W.
    kind
        ``bce_dice``: binary cross-entropy + soft Dice; ``focal_dice``: SAM's
        20 x sigmoid focal (alpha 0.25, gamma 2) + soft Dice.
    """
    from napari_samphase.core.errors import check_choice

    check_choice(kind, MASK_LOSSES, "loss")
    return MASK_LOSSES[kind](logits, target)


def mask_iou(logits, target):
    """IoU of the hard masks (logits > 0) with the target, per mask (no gradient)."""
    import torch

    with torch.no_grad():
        hard = logits > 0
        t = target > 0.5
        inter = (hard & t).sum((-2, -1)).float()
        union = (hard | t).sum((-2, -1)).float()
        return inter / union.clamp(min=1.0)


def iou_head_loss(iou_pred, logits, target):
    """Squared error of the predicted IoU against the hard mask's actual IoU, per
    mask: keeps the IoU head's scores (segment-everything's filter) meaningful."""
    return (iou_pred - mask_iou(logits, target)) ** 2
