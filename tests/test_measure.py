"""Particle measures, area fractions with intervals, per-phase statistics."""

import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy import stats

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.units import PixelSize
from napari_samphase.core.measure import (
    batch_phase_statistics,
    fraction_ci_across_fields,
    fraction_ci_within_image,
    particle_table,
    particles_of_phases,
    phase_statistics,
    point_count_fraction,
    size_histogram,
)


def disc(shape, centre, r):
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= r * r


def irregular_labels(seed=0, shape=(96, 120)):
    """Blobs of irregular (non-convex) shapes, ids not contiguous, some on the edge."""
    rng = np.random.default_rng(seed)
    noise = ndi.gaussian_filter(rng.normal(size=shape), 3)
    lab, n = ndi.label(noise > 0.05)
    return np.where(lab > 0, lab * 3 + 5, 0)  # sparse ids


# --- particle table ---------------------------------------------------------


@pytest.mark.parametrize("variant", ["plain", "row_blocks", "huge_ids"])
def test_particle_measures_equal_regionprops(variant, monkeypatch):
    from skimage.measure import regionprops_table

    from napari_samphase.core.measure import particles

    labels = base = irregular_labels()
    if variant == "row_blocks":  # moments accumulated over many blocks of rows
        monkeypatch.setattr(particles, "MOMENT_CHUNK", 7 * labels.shape[1])
    if variant == "huge_ids":  # ids far beyond the pixel count: the sorting route
        labels = np.where(base == base.max(), 10**9, base)
    t = particle_table(labels)
    ref = regionprops_table(
        base,
        properties=(
            "label",
            "area",
            "centroid",
            "perimeter",
            "axis_major_length",
            "axis_minor_length",
            "solidity",
            "equivalent_diameter_area",
        ),
    )
    assert len(t["id"]) == len(ref["label"]) > 10
    np.testing.assert_array_equal(
        t["id"], np.where(ref["label"] == base.max(), labels.max(), ref["label"])
    )
    np.testing.assert_allclose(t["area_px2"], ref["area"])
    np.testing.assert_allclose(t["ecd_px"], ref["equivalent_diameter_area"])
    np.testing.assert_allclose(t["centroid_row"], ref["centroid-0"])
    np.testing.assert_allclose(t["centroid_col"], ref["centroid-1"])
    np.testing.assert_allclose(t["perimeter_px"], ref["perimeter"])
    np.testing.assert_allclose(t["major_axis_px"], ref["axis_major_length"], rtol=1e-6)
    np.testing.assert_allclose(t["minor_axis_px"], ref["axis_minor_length"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(t["solidity"], ref["solidity"])
    ok = ref["axis_minor_length"] > 0
    np.testing.assert_allclose(
        t["aspect_ratio"][ok], ref["axis_major_length"][ok] / ref["axis_minor_length"][ok]
    )
    # border: any pixel on the first/last row/column
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    assert set(t["id"][t["touches_border"]]) == set(edge[edge > 0])


def test_disc_rectangle_and_neighbours_by_hand():
    shape = (100, 140)
    labels = np.zeros(shape, np.int32)
    labels[disc(shape, (30, 30), 12)] = 1
    labels[disc(shape, (30, 80), 12)] = 2  # 50 px from disc 1
    labels[70:73, 100:107] = 3  # 3 x 7 rectangle, other phase
    phases = np.zeros(shape, np.int32)
    phases[labels > 0] = 1
    phases[labels == 3] = 2
    t = particle_table(labels, phase_labels=phases)
    assert t["phase"].tolist() == [1, 1, 2]
    # disc of radius r: ECD ~ 2r (digitised disc: within 2%)
    assert t["ecd_px"][0] == pytest.approx(24, rel=0.02)
    assert t["aspect_ratio"][0] == pytest.approx(1, abs=0.01)
    assert t["solidity"][0] > 0.9
    # rectangle: area 21; moment axes 4 sqrt((n^2 - 1) / 12) -> 8 and 4 sqrt(2/3)
    assert t["area_px2"][2] == 21
    assert t["major_axis_px"][2] == pytest.approx(8)
    assert t["minor_axis_px"][2] == pytest.approx(4 * np.sqrt(8 / 12))
    assert t["aspect_ratio"][2] == pytest.approx(np.sqrt(6))
    assert t["solidity"][2] == pytest.approx(1)
    # nearest neighbour of the same phase; alone in its phase -> NaN
    assert t["nn_distance_px"][:2] == pytest.approx([50, 50])
    assert np.isnan(t["nn_distance_px"][2])
    assert not t["touches_border"].any()


def test_units_two_nm_per_pixel_gives_4x_areas_2x_lengths():
    labels = irregular_labels(seed=1)
    one = particle_table(labels, PixelSize(1, "nm"))
    two = particle_table(labels, PixelSize(2, "nm"))
    px = particle_table(labels)
    assert "area_um2" in one and "ecd_um" in one and "nn_distance_um" in one
    assert "area_px2" in px and "ecd_px" in px and "area_um2" not in px
    np.testing.assert_allclose(two["area_um2"], 4 * one["area_um2"])
    np.testing.assert_allclose(one["area_um2"], px["area_px2"] * 1e-6)
    for name in ("ecd", "perimeter", "major_axis", "minor_axis", "nn_distance"):
        np.testing.assert_allclose(two[f"{name}_um"], 2 * one[f"{name}_um"])
    for name in ("aspect_ratio", "solidity", "centroid_row"):  # unitless or pixels
        np.testing.assert_allclose(two[name], one[name])


def test_empty_labels_give_empty_columns():
    t = particle_table(np.zeros((8, 8), np.uint8))
    assert len(t["id"]) == 0 and len(t["ecd_px"]) == 0 and t["touches_border"].dtype == bool


def test_particles_of_phases_components_or_given_masks():
    phases = np.zeros((20, 20), np.int32)
    phases[2:5, 2:5] = 1
    phases[10:14, 10:14] = 1
    phases[4:6, 12:18] = 2
    phases[5, 5] = 1  # diagonal to the first square: same particle (8-connectivity)
    lab = particles_of_phases(phases)
    assert lab.max() == 3 and (lab[phases == 0] == 0).all()
    assert lab[2, 2] == lab[5, 5] != lab[10, 10]
    for i in np.unique(lab[lab > 0]):  # every particle in one phase
        assert len(np.unique(phases[lab == i])) == 1
    masks = np.zeros_like(phases)
    masks[10:14, 10:12], masks[10:14, 12:14] = 7, 9  # one component split in two masks
    np.testing.assert_array_equal(particles_of_phases(phases, masks), masks)
    with pytest.raises(InputError):
        particles_of_phases(phases, masks[:10])


# --- fractions ---------------------------------------------------------------


def test_point_count_on_a_systematic_grid():
    mask = np.zeros((40, 40), bool)
    mask[:, :10] = True  # a quarter of the columns
    assert point_count_fraction(mask, spacing=5) == pytest.approx(0.25)
    # grid points at 0, 8, 16, 24, 32 (offset 0): columns 0 and 8 hit -> 2 of 5
    assert point_count_fraction(mask, spacing=8, offset=0) == pytest.approx(0.4)
    with pytest.raises(InputError):
        point_count_fraction(mask, spacing=0)


def test_across_fields_t_interval_by_hand():
    f = [0.20, 0.25, 0.22, 0.31]
    mean, lo, hi = fraction_ci_across_fields(f)
    half = stats.t.ppf(0.975, 3) * np.std(f, ddof=1) / np.sqrt(4)
    assert mean == pytest.approx(np.mean(f))
    assert (lo, hi) == pytest.approx((np.mean(f) - half, np.mean(f) + half))
    _, lo90, hi90 = fraction_ci_across_fields(f, confidence=0.9)
    assert lo < lo90 < hi90 < hi
    one = fraction_ci_across_fields([0.3])
    assert one[0] == 0.3 and np.isnan(one[1]) and np.isnan(one[2])
    with pytest.raises(InputError):
        fraction_ci_across_fields([20.0, 30.0])  # percent, not fractions


def test_within_image_interval_is_the_t_interval_over_blocks():
    mask = np.zeros((40, 40), bool)
    mask[:, :13] = True
    f, lo, hi = fraction_ci_within_image(mask, blocks=2)
    blocks = [mask[r : r + 20, c : c + 20].mean() for r in (0, 20) for c in (0, 20)]
    half = stats.t.ppf(0.975, 3) * np.std(blocks, ddof=1) / 2
    assert f == pytest.approx(mask.mean())
    assert (lo, hi) == pytest.approx((max(f - half, 0), min(f + half, 1)))
    # point counts per block (grid at 2, 7, 12, 17 in each 20 px block): 3/4 or 0
    f, lo, hi = fraction_ci_within_image(mask, blocks=2, spacing=5)
    half = stats.t.ppf(0.975, 3) * np.std([0.75, 0, 0.75, 0], ddof=1) / 2
    assert half > 0.375  # the interval is clipped to [0, 1]
    assert (f, lo, hi) == pytest.approx((0.375, 0, min(0.375 + half, 1)))
    f, lo, hi = fraction_ci_within_image(mask, blocks=1)
    assert f == pytest.approx(mask.mean()) and np.isnan(lo) and np.isnan(hi)


def boolean_model(rng, shape, r, q):
    """Discs of radius r centred on Bernoulli(q) pixels (padded: no edge effect).
    A pixel is covered iff a centre lies in the disc around it, so the expected
    fraction is exactly 1 - (1 - q)^A, A = pixels in the digital disc."""
    foot = disc((2 * r + 1, 2 * r + 1), (r, r), r)
    padded = rng.random((shape[0] + 2 * r, shape[1] + 2 * r)) < q
    cover = ndi.binary_dilation(padded, foot)
    return cover[r:-r, r:-r], 1 - (1 - q) ** foot.sum()


def coverage(intervals, truth, shrink=1.0):
    hits = 0
    for f, lo, hi in intervals:
        hits += (f - shrink * (f - lo)) <= truth <= (f + shrink * (hi - f))
    return hits / len(intervals)


def test_within_image_interval_covers_the_true_fraction_at_95_percent():
    rng = np.random.default_rng(13)
    q = 1 - 0.7 ** (1 / 29)  # disc radius 3 has 29 pixels: expected fraction 0.3
    intervals = []
    for _ in range(200):
        img, p = boolean_model(rng, (128, 128), 3, q)
        intervals.append(fraction_ci_within_image(img, blocks=4))
    assert p == pytest.approx(0.3)
    assert 0.88 <= coverage(intervals, p) <= 0.99
    assert coverage(intervals, p, shrink=0.5) < 0.88  # an interval half as wide fails


def test_across_fields_interval_covers_the_true_fraction_at_95_percent():
    rng = np.random.default_rng(5)
    q = 1 - 0.85 ** (1 / 13)  # disc radius 2 has 13 pixels: expected fraction 0.15
    intervals = []
    for _ in range(200):
        fields = [boolean_model(rng, (48, 48), 2, q)[0].mean() for _ in range(4)]
        intervals.append(fraction_ci_across_fields(fields))
    assert 0.88 <= coverage(intervals, 0.15) <= 0.99
    assert coverage(intervals, 0.15, shrink=0.5) < 0.88


# --- per-phase statistics ----------------------------------------------------


def scene():
    """Phase 1: four discs r=6 inside and one cut by the left edge; phase 2: three
    3x7 rectangles, one on the bottom edge; phase 0 elsewhere."""
    shape = (80, 100)
    phases = np.zeros(shape, np.int32)
    for c in [(15, 20), (15, 50), (40, 30), (40, 70)]:
        phases[disc(shape, c, 6)] = 1
    phases[disc(shape, (60, 2), 6)] = 1  # touches the left edge
    for r0, c0 in [(60, 40), (62, 60), (77, 80)]:  # the last touches the bottom edge
        phases[r0 : r0 + 3, c0 : c0 + 7] = 2
    return phases


def test_phase_statistics_border_particles_excluded_from_sizes_counted_for_fractions():
    phases = scene()
    s = phase_statistics(phases)
    assert s["phase"].tolist() == [0, 1, 2]
    frac = [100 * (phases == p).mean() for p in (0, 1, 2)]
    np.testing.assert_allclose(s["area_fraction_pct"], frac)  # border pixels included
    assert (s["ci_low_pct"] <= s["area_fraction_pct"]).all()
    assert (s["area_fraction_pct"] <= s["ci_high_pct"]).all()
    assert s["count"].tolist() == [0, 5, 3]
    assert s["count_measured"].tolist() == [0, 4, 2]
    t = particle_table(particles_of_phases(phases), phase_labels=phases)
    inner = t["ecd_px"][(t["phase"] == 1) & ~t["touches_border"]]
    assert len(inner) == 4
    assert s["ecd_mean_px"][1] == pytest.approx(inner.mean())
    assert s["ecd_std_px"][1] == pytest.approx(inner.std(ddof=1))
    assert s["ecd_d90_px"][1] == pytest.approx(np.percentile(inner, 90))
    assert s["area_mean_px2"][2] == pytest.approx(21)
    assert s["aspect_ratio_mean"][2] == pytest.approx(np.sqrt(6))
    assert s["solidity_mean"][2] == pytest.approx(1)
    # the edge-cut disc is smaller: counting it would lower the mean
    every = phase_statistics(phases, exclude_border=False)
    assert every["count_measured"][1] == 5 and every["ecd_mean_px"][1] < s["ecd_mean_px"][1]
    # phase 0 has no particles: NaN sizes
    assert np.isnan(s["ecd_mean_px"][0]) and np.isnan(s["nn_spacing_mean_px"][0])
    # number density: unbiased counting frame (a particle on the bottom or right
    # edge is not counted, one on the top or left edge is)
    area = phases.size
    assert s["number_density_per_px2"][1] == pytest.approx(5 / area)
    assert s["number_density_per_px2"][2] == pytest.approx(2 / area)


def test_phase_statistics_units_and_nearest_neighbour_spacing():
    phases = scene()
    px = phase_statistics(phases)
    um = phase_statistics(phases, pixel_size=PixelSize(0.5, "um"))
    assert um["ecd_mean_um"][1] == pytest.approx(0.5 * px["ecd_mean_px"][1])
    assert um["area_mean_um2"][1] == pytest.approx(0.25 * px["area_mean_px2"][1])
    assert um["number_density_per_um2"][1] == pytest.approx(4 * px["number_density_per_px2"][1])
    np.testing.assert_allclose(um["area_fraction_pct"], px["area_fraction_pct"])
    # phase 2 interior rectangles at (61, 43) and (63, 63): their spacing
    assert px["nn_spacing_mean_px"][2] == pytest.approx(np.hypot(2, 20))


def test_phase_statistics_with_masks_and_an_empty_phase():
    phases = scene()
    masks = particles_of_phases(phases)
    masks[3:8, 85:95] = 99  # a matrix "particle" (inside the image)
    assert (phases[3:8, 85:95] == 0).all()
    s = phase_statistics(phases, masks)
    assert s["count"].tolist() == [1, 5, 3]  # phase 0 has a particle by construction
    assert s["ecd_mean_px"][0] > 0
    only = phase_statistics(np.zeros((10, 10), int))
    assert only["phase"].tolist() == [0] and only["area_fraction_pct"][0] == 100
    assert only["count"][0] == 0 and np.isnan(only["ecd_median_px"][0])


def test_batch_statistics_pool_particles_and_use_the_across_fields_interval():
    phases = [scene(), np.flipud(scene()), scene()[:, ::-1]]
    calls = []
    b = batch_phase_statistics(phases, progress=lambda *a: calls.append(a[:2]))
    assert calls == [(0, 3), (1, 3), (2, 3), (3, 3)]
    fr = [[100 * (p == k).mean() for p in phases] for k in (0, 1, 2)]
    for k in range(3):
        mean, lo, hi = fraction_ci_across_fields(np.array(fr[k]) / 100)
        assert b["area_fraction_pct"][k] == pytest.approx(100 * mean)
        assert (b["ci_low_pct"][k], b["ci_high_pct"][k]) == pytest.approx((100 * lo, 100 * hi))
    single = [phase_statistics(p) for p in phases]
    assert b["count"].tolist() == [sum(s["count"][k] for s in single) for k in range(3)]
    assert b["count_measured"][1] == sum(s["count_measured"][1] for s in single)


# --- histogram ---------------------------------------------------------------


def test_size_histogram_log_and_linear_and_degenerate_inputs():
    values = np.array([1.0, 2, 4, 8, 16, np.nan, 0.0, -1])
    edges, counts = size_histogram(values, bins="log", n_bins=4)
    np.testing.assert_allclose(edges, [1, 2, 4, 8, 16])
    assert counts.tolist() == [1, 1, 1, 2]  # NaN and non-positive values dropped
    edges, counts = size_histogram(values, bins="linear", n_bins=4)
    np.testing.assert_allclose(edges, [-1, 3.25, 7.5, 11.75, 16])
    assert counts.sum() == 7
    for empty in ([], [np.nan], np.array([-2.0, 0.0])):
        edges, counts = size_histogram(empty, bins="log")
        assert len(edges) == 0 and len(counts) == 0
    edges, counts = size_histogram([5.0, 5.0], bins="log", n_bins=3)
    assert counts.sum() == 2 and edges[0] < 5 < edges[-1]
    with pytest.raises(InputError):
        size_histogram(values, bins="cubic")


def test_log_bins_hold_the_extremes_exactly():
    # 10 ** log10(x) rounds below x for some x: the largest size must still be counted
    from napari_samphase.core.measure.statistics import size_histogram

    rng = np.random.default_rng(3)
    for _ in range(200):
        v = rng.lognormal(0.0, 1.0, 7)
        edges, counts = size_histogram(v, "log", 5)
        assert counts.sum() == len(v)
        assert edges[0] == v.min() and edges[-1] == v.max()
