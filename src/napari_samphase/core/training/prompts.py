"""Simulated user prompts for training SAM, as SAM and micro-sam train it.

For a target mask: a positive click inside (mostly well inside, sometimes anywhere
in the object, near its edge), or a box from the mask's bounding box with jitter,
plus a few negative clicks just outside the object. After a prediction, a
corrective click goes into the largest wrong region: positive where the object was
missed, negative where the mask spilled over.

Coordinates are SAM's (x, y) in the model input frame: a pixel (row, col) of the
resized image is the point (col + 0.5, row + 0.5), its centre, exactly as
``SamSession.to_model_coords`` passes clicks at inference (the prompt encoder adds
its own half-pixel shift on top in both cases). Box corners are the centres of the
corner pixels. All randomness comes from the numpy ``Generator`` given.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

INTERIOR_PROB = 0.8  # chance that a positive click is well inside the object
INTERIOR_DEPTH = 0.4  # ... where the distance to the edge is >= this x its maximum
BOX_JITTER = 0.1  # each box side moves by up to this fraction of the box's extent
NEAR_PROB = 0.8  # chance that a negative click is near the object (within NEAR_MARGIN)
NEAR_MARGIN = 0.5  # x the object's larger extent (at least MIN_MARGIN pixels)
MIN_MARGIN = 4


@dataclass
class Prompt:
    """One prompt for one target: points and/or a box, in the model input frame."""

    points: np.ndarray  # N x 2 float32 (x, y)
    labels: np.ndarray  # N int64: 1 positive, 0 negative, -1 not a point (SAM's padding)
    box: np.ndarray | None = None  # (x0, y0, x1, y1) float32

    @property
    def signature(self) -> tuple[bool, int]:
        """Prompts with one signature can share one decoder call."""
        return self.box is not None, len(self.points)

    def with_point(self, xy, label: int) -> Prompt:
        """This prompt plus one more point."""
        points = np.concatenate([self.points, np.asarray(xy, np.float32).reshape(1, 2)])
        labels = np.concatenate([self.labels, np.array([label], np.int64)])
        return Prompt(points, labels, self.box)


def pixel_xy(rows, cols) -> np.ndarray:
    """Pixel (row, col) -> (x, y) of its centre, N x 2 float32."""
    return np.stack([np.asarray(cols) + 0.5, np.asarray(rows) + 0.5], -1).astype(np.float32)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(row0, col0, row1, col1), inclusive, of a non-empty mask."""
    rows = np.flatnonzero(mask.any(1))
    cols = np.flatnonzero(mask.any(0))
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def _depth(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, distance to the nearest pixel outside) of a mask's pixels; the
    image border counts as outside. Computed on the mask's bounding box only."""
    r0, c0, r1, c1 = _bbox(mask)
    crop = np.pad(mask[r0 : r1 + 1, c0 : c1 + 1], 1)
    dist = ndi.distance_transform_edt(crop)[1:-1, 1:-1]
    rr, cc = np.nonzero(mask[r0 : r1 + 1, c0 : c1 + 1])
    return rr + r0, cc + c0, dist[rr, cc]


def deepest_pixel(mask: np.ndarray) -> tuple[int, int]:
    """(row, col) of a non-empty mask's pixel farthest from its edge (the first one
    in row-major order on a tie): where a user clicks to pick the object."""
    rows, cols, dist = _depth(mask)
    i = int(np.argmax(dist))
    return int(rows[i]), int(cols[i])


def positive_point(
    target: np.ndarray, rng: np.random.Generator, interior_prob: float = INTERIOR_PROB
) -> np.ndarray:
    """A click inside ``target`` (non-empty bool mask): (x, y).

    With ``interior_prob`` well inside (distance to the edge at least
    :data:`INTERIOR_DEPTH` of the deepest pixel's), else anywhere in the object.
    """
    rows, cols, dist = _depth(target)
    if rng.random() < interior_prob:
        deep = dist >= INTERIOR_DEPTH * dist.max()
        rows, cols = rows[deep], cols[deep]
    i = rng.integers(len(rows))
    return pixel_xy(rows[i], cols[i])


def negative_points(
    target: np.ndarray, rng: np.random.Generator, n: int, near_prob: float = NEAR_PROB
) -> np.ndarray:
    """``n`` clicks outside ``target``, N x 2 (x, y); fewer if there is no room.

    Each is near the object (within a margin around its bounding box) with
    ``near_prob``, else anywhere outside it.
    """
    outside_r, outside_c = None, None
    h, w = target.shape
    r0, c0, r1, c1 = _bbox(target)
    margin = max(MIN_MARGIN, int(NEAR_MARGIN * max(r1 - r0 + 1, c1 - c0 + 1)))
    win = (slice(max(r0 - margin, 0), min(r1 + margin + 1, h)),) + (
        slice(max(c0 - margin, 0), min(c1 + margin + 1, w)),
    )
    near_r, near_c = np.nonzero(~target[win])
    near_r, near_c = near_r + win[0].start, near_c + win[1].start
    out = []
    for _ in range(n):
        if len(near_r) and rng.random() < near_prob:
            i = rng.integers(len(near_r))
            out.append((near_r[i], near_c[i]))
            continue
        if outside_r is None:
            outside_r, outside_c = np.nonzero(~target)
        if not len(outside_r):
            break
        i = rng.integers(len(outside_r))
        out.append((outside_r[i], outside_c[i]))
    if not out:
        return np.zeros((0, 2), np.float32)
    rr, cc = np.array(out).T
    return pixel_xy(rr, cc)


def mask_box(target: np.ndarray) -> np.ndarray:
    """The tight box of ``target``: centres of its corner pixels (x0, y0, x1, y1)."""
    r0, c0, r1, c1 = _bbox(target)
    return np.array([c0 + 0.5, r0 + 0.5, c1 + 0.5, r1 + 0.5], np.float32)


def jittered_box(
    target: np.ndarray, rng: np.random.Generator, jitter: float = BOX_JITTER
) -> np.ndarray:
    """:func:`mask_box` with each side moved by up to ``jitter`` x the box's extent
    along its axis (in or out), clipped to the image's pixel centres."""
    h, w = target.shape
    box = mask_box(target).astype(np.float64)
    extent = np.array([box[2] - box[0] + 1, box[3] - box[1] + 1] * 2)
    box += rng.uniform(-jitter, jitter, 4) * extent
    box[0::2] = np.clip(box[0::2], 0.5, w - 0.5)
    box[1::2] = np.clip(box[1::2], 0.5, h - 0.5)
    x0, x1 = sorted(box[0::2])
    y0, y1 = sorted(box[1::2])
    return np.array([x0, y0, x1, y1], np.float32)


def prompt_kind(
    rng: np.random.Generator, box_prob: float = 0.5, negative_points_max: int = 1
) -> tuple[bool, int]:
    """(box or click, number of negative clicks) of a first prompt: a jittered box with
    ``box_prob``, else a positive click; 0..``negative_points_max`` negatives. The
    trainer draws one kind per step, so a step's prompts decode in one call."""
    use_box = bool(rng.random() < box_prob)
    return use_box, int(rng.integers(negative_points_max + 1))


def make_prompt(
    target: np.ndarray,
    rng: np.random.Generator,
    use_box: bool,
    n_negative: int,
    interior_prob: float = INTERIOR_PROB,
) -> Prompt:
    """A first prompt of a given kind for ``target``: a jittered box or one positive
    click, plus ``n_negative`` negative clicks (fewer if there is no room)."""
    box = jittered_box(target, rng) if use_box else None
    points = [np.zeros((0, 2), np.float32)]
    labels = [np.zeros(0, np.int64)]
    if not use_box:
        points.append(positive_point(target, rng, interior_prob)[None])
        labels.append(np.ones(1, np.int64))
    if n_negative:
        neg = negative_points(target, rng, n_negative)
        points.append(neg)
        labels.append(np.zeros(len(neg), np.int64))
    return Prompt(np.concatenate(points), np.concatenate(labels), box)


def corrective_point(
    pred: np.ndarray, target: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, int] | None:
    """The click a user would add to fix ``pred``: ((x, y), label), or None if it is
    right everywhere.

    The click goes well inside the largest connected wrong region: label 1 in a
    missed part of ``target`` (false negative), 0 in a part of ``pred`` outside it
    (false positive).
    """
    best = None  # (area, label, mask)
    for label, wrong in ((1, target & ~pred), (0, pred & ~target)):
        if not wrong.any():
            continue
        comp, n = ndi.label(wrong)
        areas = np.bincount(comp.ravel(), minlength=n + 1)[1:]
        j = int(np.argmax(areas))
        if best is None or areas[j] > best[0]:
            best = (areas[j], label, comp == j + 1)
    if best is None:
        return None
    _, label, region = best
    rows, cols, dist = _depth(region)
    deep = dist >= 0.5 * dist.max()
    rows, cols = rows[deep], cols[deep]
    i = rng.integers(len(rows))
    return pixel_xy(rows[i], cols[i]), label
