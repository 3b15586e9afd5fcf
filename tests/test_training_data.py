"""Fine-tuning data: pairs, splits, simulated prompts, augmentation, losses."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.io import write_png, write_tiff
from napari_samphase.core.training.augment import (
    DIHEDRAL,
    dihedral,
    intensity_jitter,
)
from napari_samphase.core.training.data import (
    TrainingPair,
    pairs_from_arrays,
    pairs_from_folders,
    semantic_to_instances,
    split_pairs,
)
from napari_samphase.core.training.prompts import (
    Prompt,
    corrective_point,
    jittered_box,
    make_prompt,
    mask_box,
    negative_points,
    pixel_xy,
    positive_point,
    prompt_kind,
)


def _pixel(xy):
    """(x, y) pixel centre -> (row, col)."""
    x, y = np.asarray(xy, float)
    assert x % 1 == 0.5 and y % 1 == 0.5  # always a pixel centre
    return int(y), int(x)


def _labelled(seed=0, shape=(40, 48)):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, shape, np.uint8)
    labels = np.zeros(shape, np.int32)
    labels[5:15, 5:20] = 1
    labels[22:35, 25:40] = 2
    return image, labels


# -- pairs ------------------------------------------------------------------------------
def test_pairs_match_by_stem_in_two_folders_and_in_one(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for name, suffix in (("a", ""), ("b", "_labels"), ("c", "_masks")):
        image, lab = _labelled(seed=ord(name))
        write_tiff(images / f"{name}.tif", image)
        write_png(labels / f"{name}{suffix}.png", lab.astype(np.uint8) * (ord(name) - 96))
    (images / "notes.txt").write_text("not an image")
    pairs = pairs_from_folders(images, labels)
    assert [p.name for p in pairs] == ["a", "b", "c"]
    for p in pairs:
        image, lab = _labelled(seed=ord(p.name))
        assert (p.image == image).all()
        assert set(np.unique(p.instances)) == {0, ord(p.name) - 96, 2 * (ord(p.name) - 96)}
        assert p.n_objects == 2
    # images and their "_labels" files side by side: the label file is no image
    both = tmp_path / "both"
    both.mkdir()
    image, lab = _labelled()
    write_tiff(both / "x.tif", image)
    write_tiff(both / "x_labels.tif", lab)
    pairs = pairs_from_folders(both, both)
    assert [p.name for p in pairs] == ["x"]
    assert (pairs[0].instances == lab).all()
    # file lists work as folders do
    pairs = pairs_from_folders([images / "b.tif"], [labels / "b_labels.png", labels / "a.png"])
    assert [p.name for p in pairs] == ["b"]


def test_semantic_labels_become_connected_components_per_class():
    classes = np.zeros((30, 30), np.uint8)
    classes[2:8, 2:8] = 1
    classes[20:26, 2:8] = 1  # a second region of class 1
    classes[2:8, 8:14] = 3  # touches the first region, another class
    inst = semantic_to_instances(classes)
    assert len(np.unique(inst[inst > 0])) == 3
    for region in (classes[2:8, 2:8], classes[20:26, 2:8], classes[2:8, 8:14]):
        assert region.all()
    assert len(np.unique(inst[2:8, 2:8])) == 1 and len(np.unique(inst[2:8, 8:14])) == 1
    assert inst[2, 2] != inst[20, 2] and inst[2, 2] != inst[2, 8]
    image = np.zeros((30, 30), np.uint8)
    as_instances = pairs_from_arrays([("s", image, classes)])[0]
    as_classes = pairs_from_arrays([("s", image, classes)], semantic=True)[0]
    assert as_instances.n_objects == 2 and as_classes.n_objects == 3


def test_every_bad_pair_is_named_in_one_error(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    image, lab = _labelled()
    write_tiff(images / "good.tif", image)
    write_tiff(labels / "good.tif", lab)
    write_tiff(images / "nolabels.tif", image)  # no label file
    write_tiff(images / "badshape.tif", image)
    write_tiff(labels / "badshape.tif", lab[:-3])
    write_tiff(images / "empty.tif", image)
    write_tiff(labels / "empty.tif", np.zeros_like(lab))
    write_tiff(images / "broken.tif", image)
    (labels / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(InputError) as err:
        pairs_from_folders(images, labels)
    msg = str(err.value)
    assert "\n" not in msg
    for name in ("nolabels.tif", "badshape.tif", "empty.tif", "broken.tif"):
        assert name in msg
    assert "good.tif" not in msg
    assert "no label file" in msg and "hold no object" in msg and "cannot read" in msg
    # each alone
    for name in ("nolabels", "badshape", "empty", "broken"):
        with pytest.raises(InputError, match=name):
            pairs_from_folders([images / f"{name}.tif"], labels)
    assert len(pairs_from_folders([images / "good.tif"], labels)) == 1
    with pytest.raises(InputError, match="no such file"):
        pairs_from_folders(tmp_path / "missing", labels)
    with pytest.raises(InputError, match="no images"):
        pairs_from_folders(tmp_path / "labels" / "..", labels)


def test_bad_arrays_are_named():
    image, lab = _labelled()
    with pytest.raises(InputError) as err:
        pairs_from_arrays(
            [
                ("ok", image, lab),
                ("shape", image, lab[:, :-1]),
                ("empty", image, np.zeros_like(lab)),
                ("float", image, lab + 0.5),
                ("tiny", image[:3, :3], lab[:3, :3]),
            ]
        )
    msg = str(err.value)
    assert "ok" not in msg.replace("cannot", "")
    for name in ("shape", "empty", "float", "tiny"):
        assert name in msg
    with pytest.raises(InputError, match="no training images"):
        pairs_from_arrays([])


def test_split_is_seeded_and_by_image():
    image, lab = _labelled()
    pairs = [TrainingPair(image, lab, f"p{i}") for i in range(10)]
    train, val = split_pairs(pairs, 0.2, seed=1)
    assert len(val) == 2 and len(train) == 8
    assert {p.name for p in train} | {p.name for p in val} == {p.name for p in pairs}
    assert not {p.name for p in train} & {p.name for p in val}
    again = split_pairs(pairs, 0.2, seed=1)
    assert [p.name for p in again[1]] == [p.name for p in val]
    others = {tuple(p.name for p in split_pairs(pairs, 0.2, seed=s)[1]) for s in range(10)}
    assert len(others) > 1  # the seed matters
    assert split_pairs(pairs[:1], 0.5, 0) == (pairs[:1], [])
    train, val = split_pairs(pairs[:2], 0.01, 0)
    assert len(train) == 1 and len(val) == 1
    train, val = split_pairs(pairs[:3], 0.9, 0)
    assert len(train) == 1 and len(val) == 2
    assert split_pairs(pairs, 0.0, 0)[1] == []
    for bad in (1.0, -0.1):
        with pytest.raises(InputError, match="val_fraction"):
            split_pairs(pairs, bad, 0)


# -- prompts ----------------------------------------------------------------------------
def _blob():
    target = np.zeros((60, 80), bool)
    yy, xx = np.mgrid[:60, :80]
    target[(yy - 25) ** 2 / 15**2 + (xx - 40) ** 2 / 22**2 <= 1] = True
    return target


def test_points_are_pixel_centres_in_x_y_order():
    target = np.zeros((20, 30), bool)
    target[3, 17] = True
    rng = np.random.default_rng(0)
    assert positive_point(target, rng).tolist() == [17.5, 3.5]
    assert mask_box(target).tolist() == [17.5, 3.5, 17.5, 3.5]
    assert pixel_xy(3, 17).tolist() == [17.5, 3.5]


def test_positive_points_inside_mostly_deep_negatives_outside_near():
    target = _blob()
    dist = ndi.distance_transform_edt(target)
    rng = np.random.default_rng(1)
    depths = []
    for _ in range(200):
        r, c = _pixel(positive_point(target, rng))
        assert target[r, c]
        depths.append(dist[r, c])
    depths = np.array(depths)
    assert (depths >= 0.4 * dist.max()).mean() > 0.7  # mostly well inside
    assert (depths < 0.4 * dist.max()).any()  # sometimes near the edge
    deep = [dist[_pixel(positive_point(target, rng, interior_prob=1.0))] for _ in range(50)]
    assert min(deep) >= 0.4 * dist.max()
    neg = negative_points(target, rng, 200)
    assert len(neg) == 200
    rows, cols = np.array([_pixel(p) for p in neg]).T
    assert not target[rows, cols].any()
    outside = ndi.distance_transform_edt(~target)[rows, cols]
    assert np.median(outside) < 15  # near the object, mostly
    assert len(negative_points(np.ones((10, 10), bool), rng, 3)) == 0  # no room


def test_box_covers_the_mask_within_jitter():
    target = _blob()
    rng = np.random.default_rng(2)
    tight = mask_box(target)
    x0, y0, x1, y1 = tight
    ext = np.array([x1 - x0 + 1, y1 - y0 + 1] * 2)
    boxes = np.array([jittered_box(target, rng) for _ in range(300)])
    assert (np.abs(boxes - tight) <= 0.1 * ext + 1e-4).all()
    assert (np.abs(boxes - tight) > 0.05 * ext).any()  # it does jitter
    assert (boxes[:, 0] < x0).any() and (boxes[:, 0] > x0).any()  # in and out
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    # clipped to the image's pixel centres
    edge = np.zeros((30, 30), bool)
    edge[0:20, 0:30] = True
    clipped = np.array([jittered_box(edge, rng) for _ in range(100)])
    assert clipped[:, [0, 1]].min() >= 0.5 and clipped[:, [2, 3]].max() <= 29.5
    assert jittered_box(target, rng, jitter=0.0).tolist() == tight.tolist()


def test_prompt_kinds():
    """The trainer draws one kind per step (prompt_kind) and builds each object's
    prompt of that kind (make_prompt): every combination occurs."""
    target = _blob()
    rng = np.random.default_rng(3)
    kinds = set()
    for _ in range(100):
        p = make_prompt(target, rng, *prompt_kind(rng, box_prob=0.5, negative_points_max=2))
        assert isinstance(p, Prompt)
        n_pos = int((p.labels == 1).sum())
        n_neg = int((p.labels == 0).sum())
        assert n_pos == (0 if p.box is not None else 1)
        assert n_neg <= 2 and len(p.points) == n_pos + n_neg
        kinds.add((p.box is not None, n_neg))
    assert kinds == {(b, n) for b in (False, True) for n in range(3)}
    p = make_prompt(target, rng, use_box=True, n_negative=1)
    assert p.signature == (True, 1) and p.labels.tolist() == [0]
    q = p.with_point((3.5, 4.5), 1)
    assert q.signature == (True, 2) and q.labels.tolist() == [0, 1]
    assert q.points[-1].tolist() == [3.5, 4.5]


def test_corrective_point_goes_to_the_largest_error_with_its_label():
    target = _blob()
    rng = np.random.default_rng(4)
    # missed: the right part of the object (large), plus a small spill elsewhere
    pred = target.copy()
    pred[:, 45:] = False
    pred[50:53, 2:5] = True
    for _ in range(20):
        xy, label = corrective_point(pred, target, rng)
        r, c = _pixel(xy)
        assert label == 1 and target[r, c] and not pred[r, c] and c >= 45
    # spilled over: a large false region, plus a small miss
    pred = target.copy()
    pred[0:20, 60:80] = True
    pred[25, 40] = False
    for _ in range(20):
        xy, label = corrective_point(pred, target, rng)
        r, c = _pixel(xy)
        assert label == 0 and pred[r, c] and not target[r, c]
    # two misses: the larger wins
    pred = target.copy()
    pred[20:22, 30:32] = False
    pred[10:20, 35:50] = False
    xy, label = corrective_point(pred, target, rng)
    r, c = _pixel(xy)
    assert label == 1 and 10 <= r < 20 and 35 <= c < 50
    assert corrective_point(target, target, rng) is None


# -- augmentation -----------------------------------------------------------------------
def test_eight_distinct_dihedral_transforms_move_labels_with_pixels():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 255, (7, 9, 3), np.uint8)
    index = np.arange(7 * 9).reshape(7, 9)  # a label per pixel: where it came from
    assert len(DIHEDRAL) == 8
    seen = set()
    for k in range(8):
        img_t, idx_t = dihedral(image, k), dihedral(index, k)
        rows, cols = np.unravel_index(idx_t, index.shape)
        assert (img_t == image[rows, cols]).all()  # each pixel kept its label
        seen.add(idx_t.tobytes() + bytes(idx_t.shape))
    assert len(seen) == 8
    assert (dihedral(index, 0) == index).all()
    assert dihedral(index, 1).shape == (9, 7)


def test_intensity_jitter_is_small_seeded_and_keeps_the_range():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (32, 32, 3)).astype(np.uint8)
    a = intensity_jitter(image, np.random.default_rng(1))
    b = intensity_jitter(image, np.random.default_rng(1))
    c = intensity_jitter(image, np.random.default_rng(2))
    assert a.dtype == np.float32 and a.shape == image.shape
    assert (a == b).all() and not (a == c).all()
    assert a.min() >= 0 and a.max() <= 255
    diff = np.abs(a - image.astype(np.float32))
    assert 0 < diff.mean() < 40
    # monotonic: order of gray levels is kept
    order = np.argsort(image[..., 0].ravel(), kind="stable")
    assert (np.diff(a[..., 0].ravel()[order]) >= -1e-3).all()


# -- losses -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bce_dice", "focal_dice"])
def test_mask_losses_rank_good_and_bad_masks(kind):
    import torch

    from napari_samphase.core.training.losses import iou_head_loss, mask_iou, mask_loss

    target = torch.zeros(2, 1, 16, 16)
    target[:, :, 4:12, 4:12] = 1
    good = (target * 2 - 1) * 10
    logits = torch.cat([good, -good, torch.zeros_like(good)], 1)  # P x 3 masks
    loss = mask_loss(logits, target, kind)
    assert loss.shape == (2, 3)
    assert (loss[:, 0] < 0.01).all() and (loss[:, 1] > loss[:, 2]).all()
    assert (loss[:, 2] > loss[:, 0]).all()
    iou = mask_iou(logits, target)
    assert iou[0].tolist() == [1.0, 0.0, 0.0]
    assert torch.allclose(iou_head_loss(iou, logits, target), torch.zeros(2, 3))
    assert torch.allclose(
        iou_head_loss(torch.ones(2, 3), logits, target)[0], torch.tensor([0.0, 1, 1])
    )
    with pytest.raises(InputError, match="loss"):
        mask_loss(logits, target, "l2")
