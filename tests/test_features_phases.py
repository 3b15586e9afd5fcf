import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.outputs.report import phase_table, phase_table_of
from napari_samphase.core.phases.clustering import find_phases
from napari_samphase.core.phases.features import FEATURE_SETS, compute_features, interior_points
from napari_samphase.core.phases.query import PhaseQuery

from .conftest import blobs_labels


def test_stats_features_match_numpy():
    from scipy import ndimage as ndi

    image, labels = blobs_labels()
    rng = np.random.default_rng(0)
    image = np.clip(image + rng.integers(-20, 20, image.shape), 0, 255).astype(np.uint8)
    labels[27:31, 27:31] = 5  # too small for an interior: all its pixels count
    x, names, _ = compute_features(image, labels, [1, 2, 3, 4, 5], "intensity")
    for j, i in enumerate([1, 2, 3, 4, 5]):
        # the mask's interior: its edge band (2 px) holds the blurred border
        inner = ndi.binary_erosion(labels == i, iterations=2)
        px = image[inner if inner.sum() >= 16 else labels == i].astype(float)
        assert x[j, names.index("mean")] == pytest.approx(px.mean() / 255, abs=1e-6)
        assert x[j, names.index("std")] == pytest.approx(px.std() / 255, abs=1e-6)
        assert x[j, names.index("p50")] == pytest.approx(np.percentile(px, 50) / 255, abs=2 / 255)


def test_shape_and_prompt_color_features():
    image, labels = blobs_labels()
    labels[5:10, 40:55] = 0  # mask 2 becomes a 10 x 15 rectangle
    x, names, _ = compute_features(image, labels, [1, 2], "shape")
    assert np.exp(x[0, names.index("log_area")]) == pytest.approx(225)
    assert np.exp(x[1, names.index("log_area")]) == pytest.approx(150)
    assert x[0, names.index("solidity")] == pytest.approx(1.0)
    assert x[1, names.index("eccentricity")] > x[0, names.index("eccentricity")]
    pts = interior_points(labels, np.array([1, 3]))
    assert labels[int(pts[0, 0]), int(pts[0, 1])] == 1
    x, names, _ = compute_features(image, labels, [1, 3], "prompt_color", points=pts)
    assert names == ["prompt_gray"]
    assert x[:, 0] == pytest.approx([30 / 255, 220 / 255], abs=2 / 255)


def test_unknown_feature_names_are_rejected():
    image, labels = blobs_labels()
    with pytest.raises(InputError, match="unknown feature"):
        compute_features(image, labels, [1], "colour")
    with pytest.raises(InputError, match="embedding"):
        compute_features(image, labels, [1], "embedding")
    assert set(FEATURE_SETS) >= {"prompt_color", "default", "full"}


def test_kmeans_groups_synthetic_phases(micrograph):
    m = micrograph
    res = find_phases(m.image, m.instances, k=4, background="class")
    # background (the matrix) is phase 0 and counts in K: masks get 3 phases
    assert res.n_phases == 3 and res.k == 4
    # each predicted phase holds one true phase (darkest first)
    for p in (1, 2, 3):
        true = np.unique(m.instance_phase[res.mask_ids[res.phase_of_mask == p]])
        assert len(true) == 1
    dark = res.phase_of_mask[m.instance_phase[res.mask_ids] == 1]
    assert (dark == 1).all()
    assert (res.phase_labels[m.instances == 0] == 0).all()


def test_background_modes(micrograph):
    m = micrograph
    ignore = find_phases(m.image, m.instances, k=3, background="ignore")
    assert ignore.n_phases == 3 and ignore.k == 3
    masks = find_phases(m.image, m.instances, k=4, background="masks")
    # the matrix became masks and is a phase of its own
    assert (masks.phase_labels > 0).all()
    assert len(np.unique(masks.phase_labels[m.instances == 0])) == 1


def test_auto_k_finds_three_phases(micrograph):
    m = micrograph
    res = find_phases(m.image, m.instances, k="auto", features="intensity", background="ignore")
    assert res.n_phases == 3
    assert max(res.silhouette, key=res.silhouette.get) == 3


def test_few_click_steering_respects_examples():
    # Two gray levels, but the user says dark mask 1 and bright mask 3 are one phase
    # and dark mask 2 is another: examples win over the intensity split.
    image, labels = blobs_labels()
    res = find_phases(
        image, labels, k=2, features="intensity", background="ignore", examples={1: 1, 3: 1, 2: 2}
    )
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    assert lut[1] == lut[3] == 1 and lut[2] == 2
    # The unlabelled bright mask 4 (225) goes to the phase whose centre is nearer:
    # phase 1 sits between dark 30 and bright 220, phase 2 on dark 35.
    assert lut[4] == 1
    # With mask 4 named as an example of the dark mask's phase, it goes there.
    res = find_phases(
        image, labels, k=2, features="intensity", background="ignore", examples={1: 1, 4: 2}
    )
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    assert lut == {1: 1, 2: 1, 3: 2, 4: 2}


def test_fixed_assignments_survive_reclustering():
    image, labels = blobs_labels()
    first = find_phases(image, labels, k=2, features="intensity", background="ignore")
    lut = dict(zip(first.mask_ids.tolist(), first.phase_of_mask.tolist(), strict=True))
    assert lut[1] == lut[2] != lut[3]
    moved = 3 - lut[4]  # move mask 4 to the other phase by hand
    second = find_phases(
        image, labels, k=2, features="intensity", background="ignore", fixed={4: moved}
    )
    lut2 = dict(zip(second.mask_ids.tolist(), second.phase_of_mask.tolist(), strict=True))
    assert lut2[4] == moved and second.fixed == {4: moved}
    third = find_phases(
        image, labels, k=2, features="intensity", background="ignore", fixed=second.fixed
    )
    assert dict(zip(third.mask_ids.tolist(), third.phase_of_mask.tolist(), strict=True))[4] == moved


def test_model_assigns_new_masks():
    image, labels = blobs_labels()
    res = find_phases(image, labels, k=2, features="intensity", background="ignore")
    x, _, _ = compute_features(image, labels, [1, 4], "intensity")
    assert list(res.model.assign(x)) == [1, 2]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k": 10}, "larger than the number of masks"),
        ({"k": 1}, "leaves no phase"),
        ({"k": "many"}, "whole number or 'auto'"),
        ({"k": 2, "examples": {99: 1}}, "not in the label image"),
        ({"k": 2, "examples": {1: 5}}, "names phase 5"),
        ({"k": 2, "background": "sky"}, "background must be"),
    ],
)
def test_bad_phase_requests(kwargs, match):
    image, labels = blobs_labels()
    with pytest.raises(InputError, match=match):
        find_phases(image, labels, **kwargs)


def test_empty_and_mismatched_labels():
    image, labels = blobs_labels()
    with pytest.raises(InputError, match="no masks"):
        find_phases(image, np.zeros_like(labels), k=2)
    with pytest.raises(InputError, match="does not match"):
        find_phases(image, labels[:30], k=2)


def test_same_phase_query_and_table():
    image, labels = blobs_labels()
    res = find_phases(image, labels, k=3, features="intensity", background="class")
    q = PhaseQuery.from_result(res)
    hit = q(10, 10)  # inside mask 1
    assert hit.mask_id == 1 and not hit.is_background
    assert sorted(hit.mask_ids.tolist()) == [1, 2]
    assert hit.bboxes.tolist() == [[5, 5, 20, 20], [5, 40, 20, 55]]
    assert "2 components" in hit.describe()
    bg = q(30, 30)
    assert bg.is_background and len(bg.mask_ids) == 0 and "background" in bg.describe()
    assert q(-1, 5).is_background

    table = phase_table_of(res, image)
    assert list(table["phase"]) == [0, 1, 2]
    assert table["area_fraction"].sum() == pytest.approx(100.0)
    assert table["area_fraction"][1] == pytest.approx(100 * 450 / 4096)
    assert list(table["count"]) == [0, 2, 2]
    assert table["mean_intensity"][0] == pytest.approx(128 / 255, abs=1e-3)
    assert table["color"][1].startswith("#")
    no_bg = phase_table(res.phase_labels, include_background=False)
    assert list(no_bg["phase"]) == [1, 2]


def test_needs_embedding_follows_the_feature_set():
    from napari_samphase.core.phases.features import needs_embedding

    assert needs_embedding("full") and needs_embedding("stats+embedding")
    assert not needs_embedding("default") and not needs_embedding("prompt_color")


def _sizes_and_levels():
    """Two kinds of masks: large dark squares (ids 1, 2) and small bright ones (3, 4),
    plus mid-gray mid-size ones (5, 6) for the seeded case."""
    image = np.full((96, 96), 128, np.uint8)
    labels = np.zeros((96, 96), np.int32)
    for i, (r, c, size, level) in enumerate(
        [
            (2, 2, 20, 30),
            (2, 40, 20, 35),
            (40, 2, 6, 220),
            (40, 40, 6, 225),
            (70, 2, 12, 120),
            (70, 40, 12, 125),
        ],
        1,
    ):
        labels[r : r + size, c : c + size] = i
        image[r : r + size, c : c + size] = level
    return image, labels


@pytest.mark.parametrize("features", ["shape+stats", "texture+stats", "shape"])
def test_phase_ids_follow_image_intensity_whatever_the_features(features):
    # The first feature column is log area (or an LBP bin): ordering by it would make
    # the small bright masks phase 1. Phase 1 is the darkest in the image.
    image, labels = _sizes_and_levels()
    labels[labels > 4] = 0
    res = find_phases(image, labels, k=2, features=features, background="ignore")
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    assert lut == {1: 1, 2: 1, 3: 2, 4: 2}


def test_unseeded_phases_follow_image_intensity_after_the_seeded_ones():
    image, labels = _sizes_and_levels()
    res = find_phases(
        image, labels, k=3, features="shape+stats", background="ignore", examples={5: 1}
    )
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    # phase 1 is the user's; of the two free phases the darker (large squares) is 2
    assert lut == {1: 2, 2: 2, 3: 3, 4: 3, 5: 1, 6: 1}


def test_segment_everythings_matrix_mask_is_the_background_class(micrograph):
    # Segment-everything masks the matrix too (one mask with a hole per particle) and
    # leaves slivers: with background="class" that mask is the background, so K=4 is
    # the matrix and the three particle phases, as with an unlabelled matrix.
    m = micrograph
    labels = m.instances.astype(np.int64)
    matrix = labels.max() + 1
    labels[labels == 0] = matrix
    sliver = (labels == matrix) & (np.roll(m.instances, 2, axis=1) > 0)
    labels[sliver] = 0  # a 2-px sliver on one side of each particle
    assert 0 < (labels == 0).mean() < 0.05
    res = find_phases(m.image, labels, k=4, background="class")
    assert res.n_phases == 3 and res.k == 4
    assert (res.phase_labels[labels == matrix] == 0).all()
    assert matrix not in res.mask_ids and (res.labels[labels == matrix] == 0).all()
    for p in (1, 2, 3):  # each phase holds one true phase
        assert len(np.unique(m.phases[res.phase_labels == p])) == 1
    # a hand assignment that names the matrix mask keeps it a mask
    kept = find_phases(m.image, labels, k=4, background="class", fixed={int(matrix): 1})
    assert kept.phase_of([matrix])[0] == 1
    # "ignore" never turns a mask into background
    ignore = find_phases(m.image, labels, k=4, background="ignore")
    assert matrix in ignore.mask_ids and ignore.n_phases == 4


def test_slivers_are_no_background_class():
    # Masks that fill the image (no matrix) with slivers between them: the slivers do
    # not take one of the K phases.
    labels = np.repeat(np.repeat(np.array([[1, 2], [3, 4]]), 32, 0), 32, 1)
    image = np.array([30, 35, 220, 225], np.uint8)[labels - 1]
    labels[31, :] = 0
    res = find_phases(image, labels, k=2, features="intensity", background="class")
    assert res.k == 2 and res.n_phases == 2
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    assert lut == {1: 1, 2: 1, 3: 2, 4: 2}
    # with min_background=0 any unlabelled pixel is a class, as before
    res = find_phases(
        image, labels, k=2, features="intensity", background="class", min_background=0
    )
    assert res.k == 2 and res.n_phases == 1
