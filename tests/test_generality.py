"""Phase maps beyond particles in a matrix: generated kinds, the pixel mode, auto."""

import numpy as np
import pytest

from napari_samphase.core.errors import InputError
from napari_samphase.core.evaluation.metrics import semantic_metrics
from napari_samphase.core.image.kinds import KINDS
from napari_samphase.core.phases.modes import (
    MODE_NAMES,
    PHASE_MODES,
    MappedPhases,
    ScoreSpace,
    coherence,
    map_phases,
    score_phase_map,
)
from napari_samphase.core.phases.pixels import absorb_small, map_pixels
from napari_samphase.core.phases.query import PhaseQuery
from napari_samphase.core.progress import Cancelled


def miou(result, truth):
    return semantic_metrics(result.phase_labels, truth)["miou"]


@pytest.fixture(scope="module")
def lamellae():
    return KINDS["lamellae"](11)


@pytest.fixture(scope="module")
def lamellae_auto(lamellae):
    image, truth = lamellae
    return map_phases(image, int(truth.max()) + 1, seed=3)


@pytest.fixture(scope="module")
def particles():
    return KINDS["particles"](11)


def test_kinds_are_seeded_and_have_their_defining_property():
    for name, make in KINDS.items():
        image, truth = make(3)
        again, truth2 = make(3)
        other, _ = make(4)
        assert image.dtype == np.uint8 and image.shape == truth.shape, name
        assert np.array_equal(image, again) and np.array_equal(truth, truth2), name
        assert not np.array_equal(image, other), name
        assert len(np.unique(truth)) >= 2, name
    # texture kinds: equal mean gray, different local variation
    from scipy import ndimage as ndi

    for name in ("texture", "lamellae"):
        image, truth = KINDS[name](3)
        g = image.astype(float)
        means = [g[truth == c].mean() for c in (0, 1)]
        assert abs(means[0] - means[1]) < 5, (name, means)
        detail = (g - ndi.gaussian_filter(g, 2)) ** 2
        assert detail[truth == 1].mean() > 2 * detail[truth == 0].mean(), name


def test_pixel_mode_beats_intensity_on_equal_mean_textures_and_auto_picks_it(
    lamellae, lamellae_auto
):
    image, truth = lamellae
    k = int(truth.max()) + 1
    pixels = map_phases(image, k, mode="pixels", seed=3)
    intensity = map_phases(image, k, mode="intensity", seed=3)
    assert miou(pixels, truth) > miou(intensity, truth) + 0.3
    auto = lamellae_auto
    assert auto.mode == "pixels"
    assert set(auto.scores) == set(PHASE_MODES)
    assert np.array_equal(auto.phase_labels, pixels.phase_labels)


def test_auto_on_particles_does_at_least_as_well_as_intensity(particles):
    image, truth = particles
    k = int(truth.max()) + 1
    auto = map_phases(image, k)
    baseline = map_phases(image, k, mode="intensity")
    assert auto.mode != "pixels"  # the texture mode draws halos around particles here
    assert miou(auto, truth) >= miou(baseline, truth) - 0.01


def test_same_seed_same_map_and_phase_ids_by_brightness(lamellae, lamellae_auto):
    image, truth = lamellae
    # K=5 over-splits two phases: k-means has several optima, so the seed matters
    a = map_phases(image, 5, mode="pixels", seed=3)
    b = map_phases(image, 5, mode="pixels", seed=3)
    other = map_phases(image, 5, mode="pixels", seed=4)
    assert np.array_equal(a.phase_labels, b.phase_labels)
    assert not np.array_equal(a.phase_labels, other.phase_labels)
    again = map_phases(image, 2, seed=3)
    assert again.mode == lamellae_auto.mode
    assert np.array_equal(again.phase_labels, lamellae_auto.phase_labels)
    means = [image[a.phase_labels == p].mean() for p in range(1, 6)]
    assert means == sorted(means)  # phase 1 is the darkest, as for masks


def test_pixel_result_works_with_the_same_phase_query(lamellae):
    image, _ = lamellae
    res = map_pixels(image, 2)
    assert set(np.unique(res.phase_labels)) == {1, 2}
    q = PhaseQuery.from_result(res)
    for r, c in [(10, 10), (100, 200), (250, 3)]:
        hit = q(r, c)
        assert hit.phase == res.phase_labels[r, c]
        members = np.isin(res.labels, hit.mask_ids)
        # the members are exactly the components of that phase
        assert np.array_equal(members, res.phase_labels == hit.phase)


def test_small_components_are_absorbed():
    phase = np.ones((40, 40), np.uint16)
    phase[10:12, 10:12] = 2  # 4 px speck
    phase[20:30, 20:30] = 2  # 100 px region
    out = absorb_small(phase, 16)
    assert (out[10:12, 10:12] == 1).all()
    assert (out[20:30, 20:30] == 2).all()


def test_coherence_counts_equal_neighbour_pairs():
    half = np.ones((4, 4), int)
    half[:, 2:] = 2
    # 12 horizontal pairs (4 cross the border) + 12 vertical pairs (none do)
    assert coherence(half) == pytest.approx(20 / 24)
    assert coherence(np.indices((6, 6)).sum(0) % 2) == 0.0  # checkerboard
    assert coherence(np.zeros((5, 7), int)) == 1.0


def test_score_prefers_a_clean_map_to_the_same_map_with_speckle(lamellae):
    image, truth = lamellae
    space = ScoreSpace.of(image)
    clean = truth + 1
    rng = np.random.default_rng(0)
    noisy = np.where(rng.random(truth.shape) < 0.1, 3 - clean, clean)
    assert score_phase_map(clean, space) > score_phase_map(noisy, space)
    assert score_phase_map(np.ones_like(clean), space) == float("-inf")


def test_bad_mode_and_options_are_rejected_with_the_choices(particles):
    image, _ = particles
    with pytest.raises(InputError) as err:
        map_phases(image, 3, mode="texturez")
    for name in MODE_NAMES:
        assert name in str(err.value)
    with pytest.raises(InputError, match="smooth"):
        map_phases(image, 3, mode="masks", smooth=2.0)
    with pytest.raises(InputError, match="pixel features"):
        map_phases(image, 3, mode="pixels", pixel_features="nope")


def test_progress_is_reported_and_cancel_stops(particles):
    image, _ = particles
    seen = []
    res = map_phases(image, 3, progress=lambda d, t, m: seen.append((d, t, m)))
    assert isinstance(res, MappedPhases)
    assert seen[-1][0] == seen[-1][1] and "auto" in seen[-1][2]
    assert any(m.startswith("pixels:") for _, _, m in seen)  # a mode's own steps too

    def cancel(done, total, message):
        if message.startswith("pixels"):
            raise Cancelled("stop")

    with pytest.raises(Cancelled):
        map_phases(image, 3, progress=cancel)


def test_auto_k_in_pixel_mode(lamellae):
    image, _ = lamellae
    res = map_phases(image, "auto", mode="pixels")
    assert res.n_phases in res.silhouette and res.n_phases == max(
        res.silhouette, key=res.silhouette.get
    )
