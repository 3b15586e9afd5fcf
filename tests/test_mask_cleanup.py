"""Clean-up of segment-everything's masks: rings around masks go, objects stay."""

import numpy as np
import pytest

from napari_samphase.core.image.labels import (
    Segmentation,
    clean_segmentation,
    find_rings,
    paint_masks,
    refine_edges,
    surrounding_mask,
    table_from_labels,
)

SHAPE = (64, 64)


def disk(radius, center=(32, 32), shape=SHAPE):
    rr, cc = np.indices(shape)
    return (rr - center[0]) ** 2 + (cc - center[1]) ** 2 <= radius**2


def box(r0, c0, r1, c1, shape=SHAPE):
    m = np.zeros(shape, bool)
    m[r0:r1, c0:c1] = True
    return m


def segmentation(dense, scores):
    """What segment-everything returns: masks painted by score, raw masks kept."""
    boxes, crops = [], []
    for m in dense:
        rr, cc = np.nonzero(m)
        b = (rr.min(), cc.min(), rr.max() + 1, cc.max() + 1)
        boxes.append(b)
        crops.append(m[b[0] : b[2], b[1] : b[3]])
    labels, kept = paint_masks(SHAPE, boxes, crops, np.asarray(scores, float))
    extra = {"predicted_iou": np.r_[0.0, np.asarray(scores, float)[kept]]}
    return Segmentation(
        labels, table_from_labels(labels, extra), "sam", list(zip(boxes, crops, strict=True))
    )


def test_a_whole_under_its_part_leaves_a_ring_that_goes_to_the_part():
    part, whole = disk(10), disk(13)
    matrix = ~disk(13)
    seg = segmentation([whole, part, matrix], [0.8, 0.9, 0.7])
    ring_id = int(seg.labels[32, 32 + 12])  # between radius 10 and 13: the whole
    part_id = int(seg.labels[32, 32])
    assert ring_id != part_id and ring_id > 0
    assert find_rings(seg.labels, seg.masks) == {ring_id: (part_id,)}

    clean = clean_segmentation(seg)
    assert clean.n_masks == 2 and list(clean.table["id"]) == [1, 2]
    new_part = int(clean.labels[32, 32])
    # the ring's pixels joined the part: it is the whole particle now
    assert (clean.labels == new_part).sum() == whole.sum()
    # per-mask columns follow their mask through the renumbering
    iou = dict(zip(clean.table["id"].tolist(), clean.table["predicted_iou"].tolist(), strict=True))
    assert iou[new_part] == pytest.approx(0.9)
    assert iou[int(clean.labels[0, 0])] == pytest.approx(0.7)
    assert clean.masks is seg.masks


def test_a_crescent_is_found_from_the_raw_masks_only():
    # The whole is shifted: its rest is an open crescent, not a closed ring; only the
    # raw mask shows that it held the part.
    part, whole = disk(10), disk(12, center=(35, 32))
    seg = segmentation([whole, part], [0.8, 0.9])
    crescent = int(seg.labels[32 + 14, 32])
    assert find_rings(seg.labels) == {}
    assert find_rings(seg.labels, seg.masks) == {crescent: (int(seg.labels[32, 32]),)}


def test_a_halo_around_a_mask_is_found_without_raw_masks():
    # A thin halo mask of its own (no whole behind it): its pixels go to their
    # nearest neighbour, the particle or the background.
    labels = np.zeros(SHAPE, np.int32)
    labels[disk(13) & ~disk(10)] = 1
    labels[disk(10)] = 2
    labels[box(0, 0, 8, 8)] = 3
    assert find_rings(labels) == {1: ()}
    seg = Segmentation(labels, table_from_labels(labels))
    clean = clean_segmentation(seg)
    assert clean.n_masks == 2
    particle = clean.labels == clean.labels[32, 32]
    # split between the particle and the background by distance
    assert disk(10).sum() < particle.sum() < disk(13).sum()
    assert (clean.labels[disk(13) & ~particle] == 0).all()


@pytest.mark.parametrize(
    "case",
    ["membrane", "small_particle", "thick_shell", "thin_alone"],
)
def test_thin_or_enclosing_objects_are_not_rings(case):
    labels = np.zeros(SHAPE, np.int32)
    if case == "membrane":  # a thin mask between two cells, enclosing neither
        labels[box(4, 4, 60, 30)] = 1
        labels[box(4, 30, 60, 33)] = 2
        labels[box(4, 33, 60, 60)] = 3
    elif case == "small_particle":  # thin by width, but encloses nothing
        labels[box(0, 0, 64, 40)] = 1
        labels[disk(2.5, center=(32, 42))] = 2
    elif case == "thick_shell":  # a core-shell particle: the shell is no ring
        labels[disk(22) & ~disk(8)] = 1
        labels[disk(8)] = 2
    else:  # a thin mask next to nothing
        labels[box(10, 10, 12, 50)] = 1
    assert find_rings(labels) == {}
    seg = Segmentation(labels, table_from_labels(labels))
    assert clean_segmentation(seg) is seg


def test_a_membrane_painted_under_a_blob_is_kept():
    # A thin mask that keeps most of itself is an object even when a smaller mask was
    # painted over part of it.
    membrane = box(4, 30, 60, 34)
    blob = box(20, 30, 24, 34)
    cells = box(4, 4, 60, 30) | box(4, 34, 60, 60)
    seg = segmentation([cells, membrane, blob], [0.7, 0.8, 0.9])
    assert find_rings(seg.labels, seg.masks) == {}


def test_ring_width_zero_keeps_every_mask():
    seg = segmentation([disk(13), disk(10)], [0.8, 0.9])
    assert find_rings(seg.labels, seg.masks)
    assert clean_segmentation(seg, ring_width=0) is seg


def test_the_matrix_mask_surrounds_most_masks():
    labels = np.ones(SHAPE, np.int32)  # the matrix, masked
    centers = [(12, 12), (12, 50), (50, 12), (50, 50), (32, 32)]
    for i, c in enumerate(centers, 2):
        labels[disk(5, center=c)] = i
    labels[disk(4, center=(0, 32))] = 7  # cut by the border: sits in no hole
    assert surrounding_mask(labels) == 1
    # a large particle with two inclusions, among more particles it does not hold
    labels = np.zeros(SHAPE, np.int32)
    labels[disk(14, center=(20, 20))] = 1
    labels[disk(3, center=(16, 16))] = 2
    labels[disk(3, center=(24, 24))] = 3
    for i, c in enumerate([(50, 10), (50, 30), (50, 50), (20, 50)], 4):
        labels[disk(4, center=c)] = i
    assert surrounding_mask(labels) == 0
    assert surrounding_mask(np.zeros(SHAPE, np.int32)) == 0


def two_phases(edge_col=32, noise=0.0, seed=0):
    """A dark left half and a bright right half meeting at ``edge_col``, blurred as a
    microscope would (sigma 1 px)."""
    from scipy import ndimage as ndi

    image = np.full(SHAPE, 60.0)
    image[:, edge_col:] = 190.0
    image = ndi.gaussian_filter(image, 1.0)
    image += noise * np.random.default_rng(seed).standard_normal(SHAPE)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("drawn", [30, 34])
def test_borders_between_masks_move_to_the_image_edge(drawn):
    image = two_phases(noise=6.0)
    labels = np.zeros(SHAPE, np.int32)
    labels[:, :drawn] = 1
    labels[:, drawn:] = 2
    labels[:4, :4] = 0  # background stays background
    out = refine_edges(labels, image)
    assert (out[:, :32][4:] == 1).mean() > 0.99 and (out[:, 32:] == 2).mean() > 0.99
    assert (out[:4, :4] == 0).all()
    # nothing moves farther than the band
    far = np.abs(np.arange(64) - drawn) > 2
    assert (out[:, far] == labels[:, far]).all()


def test_clean_segmentation_redraws_borders_with_the_image():
    image = two_phases()
    labels = np.zeros(SHAPE, np.int32)
    labels[:, :30] = 1
    labels[:, 30:] = 2
    seg = Segmentation(labels, table_from_labels(labels))
    assert clean_segmentation(seg) is seg  # no rings, no image: nothing to do
    clean = clean_segmentation(seg, image)
    assert (clean.labels[:, :32] == 1).all() and (clean.labels[:, 32:] == 2).all()
    assert list(clean.table["area"]) == [32 * 64, 32 * 64]
    assert clean_segmentation(seg, image, edge_band=0) is seg


class _Session:
    """Stands in for a SAM session: returns a fixed segment-everything result."""

    def __init__(self, seg):
        self.seg = seg

    def set_image(self, image, progress=None):
        pass

    def segment_everything(self, **kw):
        return self.seg


def test_the_sam_proposer_cleans_up_unless_told_not_to():
    from napari_samphase.core.proposers import make_proposer

    seg = segmentation([disk(13), disk(10), ~disk(13)], [0.8, 0.9, 0.7])
    image = np.zeros(SHAPE, np.uint8)
    cleaned = make_proposer("sam", session=_Session(seg)).propose(image)
    assert cleaned.n_masks == 2 and seg.n_masks == 3
    raw = make_proposer("sam", session=_Session(seg), clean=False).propose(image)
    assert raw is seg


def test_clean_up_reports_its_steps_and_can_be_cancelled():
    """The clean-up takes seconds on large images: it reports each step in one unit
    (steps of the clean-up) and a callback raising Cancelled stops it."""
    from napari_samphase.core.progress import Cancelled

    seg = segmentation([disk(20), disk(8, (10, 10)), box(40, 40, 60, 60)], [0.9, 0.9, 0.9])
    image = np.where(disk(20), 200, 50).astype(np.uint8)
    calls = []
    clean_segmentation(seg, image, min_area=4, progress=lambda d, t, m: calls.append((d, t, m)))
    assert calls, "no progress reported"
    assert [d for d, _, _ in calls] == list(range(1, len(calls) + 1))
    assert {t for _, t, _ in calls} == {len(calls)}
    assert all(m.startswith("mask clean-up") for _, _, m in calls)

    def cancel(done, total, message):
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        clean_segmentation(seg, image, progress=cancel)
