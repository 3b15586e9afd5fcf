"""Phases learned from assigned masks: a random forest or label spreading over the
per-mask features, next to the anchored k-means of :func:`find_phases`."""

from functools import lru_cache

import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.phases.classifier import CLASSIFIERS, classify_masks
from napari_samphase.core.phases.clustering import (
    ASSIGN_METHOD_NAMES,
    ASSIGN_METHODS,
    PhaseResult,
    find_phases,
)
from napari_samphase.core.phases.query import PhaseQuery

from .conftest import blobs_labels


@lru_cache
def size_phases(seed: int):
    """A generated micrograph whose two phases differ only by particle size: every
    particle has one of 24 gray levels at random (the spread k-means sees), the
    small ones (< 120 px) are phase 1 and the large ones (> 400 px) phase 2;
    particles in between are left out of the label image (matrix to the phases).
    Returns (image, labels, true phase per mask id)."""
    from napari_samphase.core.image.synthetic import PhaseStyle, make_micrograph

    grays = np.linspace(0.05, 0.95, 24)
    styles = (
        PhaseStyle("matrix", 0.5, 0.02, 1.5),
        *(PhaseStyle(f"gray{i}", g, 0.01, 2.0) for i, g in enumerate(grays)),
    )
    m = make_micrograph(
        (320, 320), n_particles=150, radius=(4.0, 14.0), styles=styles, seed=seed, gap=2
    )
    instances = m.instances.astype(np.int64)
    area = np.bincount(instances.ravel())
    truth = np.zeros(len(area), np.int64)
    truth[area < 120] = 1
    truth[area > 400] = 2
    truth[0] = 0
    return m.image, np.where(truth[instances] > 0, instances, 0), truth


def examples_of(truth, n, seed):
    """``n`` masks of each true phase, drawn at random (seeded)."""
    rng = np.random.default_rng(seed)
    return {
        int(m): p for p in (1, 2) for m in rng.choice(np.flatnonzero(truth == p), n, replace=False)
    }


def accuracy(result: PhaseResult, truth) -> float:
    return float((result.phase_of_mask == truth[result.mask_ids]).mean())


def test_forest_learns_the_size_that_anchored_kmeans_outvotes():
    # k-means weighs log area as one of the 3 columns of the shape group, which
    # counts half as much as the intensity group or the texture group: the anchored
    # centres sit at the mean gray of their examples and take the masks of similar
    # gray. The forest learns from the examples which feature separates them.
    forest, kmeans = [], []
    for seed in range(5):
        image, labels, truth = size_phases(seed)
        kw = {"k": 2, "background": "ignore", "examples": examples_of(truth, 3, seed), "seed": 0}
        forest.append(accuracy(find_phases(image, labels, assign_method="forest", **kw), truth))
        kmeans.append(accuracy(find_phases(image, labels, **kw), truth))
    assert np.mean(forest) >= 0.85, forest
    assert np.mean(forest) >= np.mean(kmeans) + 0.1, (forest, kmeans)


def two_groups(seed=0, n=40):
    """Two elongated groups of points, far apart across, spread along: 1 example in
    each sits at an end, nearer the middle of the other group than to its own far end."""
    rng = np.random.default_rng(seed)
    along = rng.uniform(0, 10, (2, n))
    x = np.concatenate([np.stack([along[0], rng.normal(0, 0.05, n)], 1),
                        np.stack([along[1], 2 + rng.normal(0, 0.05, n)], 1)])  # fmt: skip
    truth = np.repeat([1, 2], n)
    return x, truth, {int(np.argmin(along[0])): 1, n + int(np.argmax(along[1])): 2}


def test_spreading_follows_the_mask_graph_from_one_example_per_phase():
    x, truth, ex = two_groups()
    pred = classify_masks(x, ex, method="spreading", standardize=False)
    assert (pred == truth).all()
    # nearest centre (what anchored k-means does with one example) splits along
    centre = np.stack([x[i] for i in ex])
    nearest = np.argmin(((x[:, None] - centre[None]) ** 2).sum(-1), 1) + 1
    assert (nearest == truth).mean() < 0.8


@pytest.mark.parametrize("method", sorted(CLASSIFIERS))
def test_examples_keep_their_phase(method):
    # The user says dark mask 1 and bright mask 3 are one phase and dark mask 2
    # another: whatever the features say, the examples stay where the user put them.
    image, labels = blobs_labels()
    ex = {1: 1, 3: 1, 2: 2}
    res = find_phases(
        image, labels, k=2, features="intensity", background="ignore", examples=ex,
        assign_method=method,
    )  # fmt: skip
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    assert {m: lut[m] for m in ex} == ex
    x = np.random.default_rng(0).normal(size=(30, 4))
    rows = {0: 2, 1: 1, 2: 2, 3: 1, 4: 3}
    pred = classify_masks(x, rows, method=method)
    assert {r: int(pred[r]) for r in rows} == rows
    assert set(pred.tolist()) <= {1, 2, 3}


@pytest.mark.parametrize("method", sorted(CLASSIFIERS))
def test_same_seed_same_phases(method):
    image, labels, truth = size_phases(1)
    kw = {
        "k": 2,
        "background": "ignore",
        "examples": examples_of(truth, 3, 1),
        "assign_method": method,
    }
    a = find_phases(image, labels, seed=3, **kw)
    b = find_phases(image, labels, seed=3, **kw)
    assert np.array_equal(a.phase_of_mask, b.phase_of_mask)
    assert np.array_equal(a.phase_labels, b.phase_labels)


def test_classifier_result_is_a_normal_phase_result():
    image, labels, truth = size_phases(2)
    ex = examples_of(truth, 3, 2)
    res = find_phases(image, labels, k=2, background="ignore", examples=ex, assign_method="forest")
    assert isinstance(res, PhaseResult) and res.n_phases == 2 and res.k == 2
    # phase image, lookup table and query agree with the per-mask phases
    assert np.array_equal(res.phase_labels, res.phase_lut()[res.labels])
    q = PhaseQuery.from_result(res)
    m = next(iter(ex))
    r, c = np.argwhere(res.labels == m)[0]
    assert q(r, c).phase == ex[m] and m in q(r, c).mask_ids
    # the model gives each mask the phase whose learned centre is nearest
    assert res.model.centers.shape[0] == 2
    assert (res.model.assign(res.features) == res.phase_of_mask).mean() > 0.8


def test_auto_uses_the_classifier_only_when_every_phase_has_an_example():
    image, labels, truth = size_phases(0)
    ex = examples_of(truth, 3, 0)
    kw = {"k": 2, "background": "ignore", "seed": 0}
    auto = find_phases(image, labels, examples=ex, assign_method="auto", **kw)
    forest = find_phases(image, labels, examples=ex, assign_method="forest", **kw)
    assert np.array_equal(auto.phase_of_mask, forest.phase_of_mask)
    one = {m: p for m, p in ex.items() if p == 1}  # phase 2 has no example: k-means
    auto = find_phases(image, labels, examples=one, assign_method="auto", **kw)
    kmeans = find_phases(image, labels, examples=one, **kw)
    assert np.array_equal(auto.phase_of_mask, kmeans.phase_of_mask)
    # no examples at all: the unsupervised clustering
    assert np.array_equal(
        find_phases(image, labels, assign_method="auto", **kw).phase_of_mask,
        find_phases(image, labels, **kw).phase_of_mask,
    )


def test_auto_k_with_a_classifier_is_the_phases_the_examples_name():
    # three gray levels (silhouette: K = 3), but the user names two phases
    image = np.full((40, 120), 128, np.uint8)
    labels = np.zeros(image.shape, np.int32)
    for i, gray in enumerate([30, 35, 120, 125, 220, 225]):
        r, c = 5 + 20 * (i % 2), 5 + 20 * (i // 2)
        labels[r : r + 12, c : c + 12] = i + 1
        image[r : r + 12, c : c + 12] = gray
    kw = {"k": "auto", "features": "intensity", "background": "ignore", "k_range": (2, 4)}
    assert find_phases(image, labels, **kw).n_phases == 3
    res = find_phases(image, labels, examples={1: 1, 6: 2}, assign_method="forest", **kw)
    assert res.n_phases == 2 and res.silhouette == {}
    assert find_phases(image, labels, examples={1: 1, 6: 2}, **kw).n_phases == 3


def test_fixed_assignments_train_the_classifier_too():
    image, labels = blobs_labels()
    res = find_phases(
        image, labels, k=2, features="intensity", background="ignore",
        examples={1: 1}, fixed={3: 2}, assign_method="forest",
    )  # fmt: skip
    lut = dict(zip(res.mask_ids.tolist(), res.phase_of_mask.tolist(), strict=True))
    assert lut == {1: 1, 2: 1, 3: 2, 4: 2} and res.fixed == {3: 2}


def test_registry_names():
    assert set(CLASSIFIERS) == {"forest", "spreading"}
    assert {"kmeans", "forest", "spreading"} <= set(ASSIGN_METHODS)
    assert ASSIGN_METHOD_NAMES[0] == "auto" and set(ASSIGN_METHOD_NAMES[1:]) == set(ASSIGN_METHODS)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"assign_method": "svm", "examples": {1: 1, 3: 2}}, "assign method must be one of"),
        ({"assign_method": "forest"}, "assign at least one mask"),
        ({"assign_method": "spreading", "examples": {1: 1}}, "phase 2 has no assigned mask"),
        ({"assign_method": "forest", "examples": {1: 1, 3: 3}, "k": 3}, "phase 2 has no"),
    ],
)
def test_bad_requests_through_find_phases(kwargs, match):
    image, labels = blobs_labels()
    kw = {"k": 2, "features": "intensity", "background": "ignore", **kwargs}
    with pytest.raises(InputError, match=match):
        find_phases(image, labels, **kw)


@pytest.mark.parametrize(
    "features, examples, kwargs, match",
    [
        (np.zeros((5, 2)), {}, {}, "at least one example"),
        (np.zeros((5, 2)), {7: 1}, {}, "row 7"),
        (np.zeros((5, 2)), {1: 0}, {}, "start at 1"),
        (np.zeros((5, 2)), {1: 1}, {"method": "svm"}, "mask classifier must be one of"),
        (np.zeros(5), {1: 1}, {}, "masks x features"),
        (np.full((5, 2), np.nan), {1: 1}, {}, "finite"),
        (np.zeros((5, 2)), {1: 1, 2: 3}, {"n_phases": 3}, "phase 2 has no"),
        (np.zeros((5, 2)), {99: 1}, {"ids": np.arange(10, 15)}, "mask id 99 is not"),
    ],
)
def test_bad_input_to_classify_masks(features, examples, kwargs, match):
    with pytest.raises(InputError, match=match):
        classify_masks(features, examples, **kwargs)


def test_examples_by_mask_id():
    x = np.arange(10, dtype=float)[:, None]
    ids = np.arange(100, 110)
    pred = classify_masks(x, {100: 1, 109: 2}, ids=ids, method="forest")
    assert list(pred) == [1] * 5 + [2] * 5
