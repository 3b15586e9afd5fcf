"""Weight-free proposers on generated micrographs with known particles."""

import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.evaluation.metrics import instance_metrics
from napari_samphase.core.image.synthetic import MATRIX, PhaseStyle, make_micrograph
from napari_samphase.core.proposers import PROPOSERS, make_proposer, segment

DARK = PhaseStyle("dark", 0.2, 0.02, 2.0)
BRIGHT = PhaseStyle("bright", 0.85, 0.02, 2.0)


def _scene(particle, matrix=MATRIX, seed=3):
    return make_micrograph((256, 256), n_particles=25, styles=(matrix, particle), seed=seed)


def test_registry_lists_the_weight_free_proposers():
    assert {"sam", "threshold", "superpixels", "watershed"} <= set(PROPOSERS)
    with pytest.raises(InputError, match="no option"):
        make_proposer("watershed", levels=3)
    with pytest.raises(InputError, match="unknown proposer"):
        make_proposer("magic")


@pytest.mark.parametrize("particle", [DARK, BRIGHT], ids=["dark", "bright"])
def test_watershed_finds_particles_of_either_polarity(particle):
    scene = _scene(particle)
    seg = segment(scene.image, "watershed")
    m = instance_metrics(seg.labels, scene.instances)
    assert m["recall50"] >= 0.9 and m["precision50"] >= 0.9
    assert m["coco_ap50"] >= 0.85
    # the matrix stays unlabelled
    matrix = scene.instances == 0
    assert (seg.labels[matrix] == 0).mean() > 0.95


def test_watershed_both_polarities_on_a_mid_grey_matrix():
    scene = make_micrograph((256, 256), n_particles=30, styles=(MATRIX, DARK, BRIGHT), seed=4)
    both = segment(scene.image, "watershed", objects="both")
    m = instance_metrics(both.labels, scene.instances)
    assert m["recall50"] >= 0.85
    for phase in (1, 2):  # each polarity is found, and no mask mixes them
        ids = np.unique(scene.instances[scene.phases == phase])
        ids = ids[ids > 0]
        found = [np.bincount(both.labels[scene.instances == i]).argmax() > 0 for i in ids]
        assert np.mean(found) >= 0.85
    # "auto" never lets a particle percolate through the image
    auto = segment(scene.image, "watershed")
    from skimage.measure import label

    largest_mask = np.bincount(auto.labels.ravel())[1:].max(initial=0)
    largest_matrix = np.bincount(label(auto.labels == 0).ravel())[1:].max()
    assert largest_mask < largest_matrix


def test_touching_particles_merge_unless_split_touching():
    yy, xx = np.mgrid[:96, :160]
    image = np.full((96, 160), 200, np.uint8)
    left = (yy - 48) ** 2 + (xx - 64) ** 2 < 22**2
    right = (yy - 48) ** 2 + (xx - 96) ** 2 < 22**2
    image[left | right] = 60
    # a seam that splits the dark cores but stays inside the pair (no matrix reaches it)
    image[(np.abs(xx - 80) <= 2) & (np.abs(yy - 48) <= 14)] = 120
    merged = segment(image, "watershed", sigma=1, flatten=0)
    split = segment(image, "watershed", sigma=1, flatten=0, split_touching=True)
    assert merged.n_masks == 1
    assert split.n_masks == 2
    assert {int(split.labels[48, 50]), int(split.labels[48, 110])} == set(
        np.unique(split.labels[split.labels > 0]).tolist()
    )


def test_watershed_min_area_flat_image_and_bad_polarity():
    scene = _scene(DARK)
    all_masks = segment(scene.image, "watershed")
    big = segment(scene.image, "watershed", min_area=600)
    assert 0 < big.n_masks < all_masks.n_masks
    assert np.bincount(big.labels.ravel())[1:].min() >= 600
    flat = segment(np.full((64, 64), 90, np.uint8), "watershed")
    assert flat.n_masks == 0 and flat.labels.shape == (64, 64)
    with pytest.raises(InputError, match="objects"):
        segment(scene.image, "watershed", objects="grey")


def test_threshold_proposer_finds_dark_particles():
    scene = _scene(DARK)
    m = instance_metrics(segment(scene.image, "threshold").labels, scene.instances)
    assert m["recall50"] >= 0.8
