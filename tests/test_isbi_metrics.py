"""The ISBI 2012 metrics of benchmarks/_isbi.py against hand-computed cases, and the
scribble rule of benchmarks/bench_unet.py."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    if str(BENCH) not in sys.path:  # bench_unet imports its siblings (_report, _isbi)
        sys.path.insert(0, str(BENCH))
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


isbi = _load("_isbi")


def two_cells():
    """3 x 5: cell A in columns 0-1, membrane in column 2, cell B in columns 3-4."""
    truth = np.full((3, 5), 255, np.uint8)
    truth[:, 2] = 0
    return truth


def test_segments_are_four_connected():
    fg = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], bool)
    seg = isbi.segments(fg)
    assert seg.max() == 3  # diagonal neighbours are separate segments
    assert (seg[fg] > 0).all() and (seg[~fg] == 0).all()


def test_rand_counts_perfect_merge_and_split_by_hand():
    truth = isbi.segments(two_cells() > 0)
    # perfect: F = 1
    assert isbi.rand_fscore(*isbi.rand_counts(truth, truth)) == pytest.approx(1.0)
    # everything predicted cell: A and B merged. Pairs (n^2 normalisation) over the
    # 12 truth-foreground pixels: sum n_ij^2 = 36 + 36, sum a_i^2 = 72, sum b_j^2 =
    # 12^2 -> precision 1/2, recall 1, F = 2/3; the truth's membrane pixels (column 2)
    # take no part although the prediction puts them in the same segment
    merged = np.ones((3, 5), np.int32)
    assert isbi.rand_counts(truth, merged) == (72, 72, 144)
    assert isbi.rand_fscore(*isbi.rand_counts(truth, merged)) == pytest.approx(2 / 3)
    # column 0 predicted membrane: its 3 pixels are singletons (1 each), column 1 one
    # segment, B one segment: sum n_ij^2 = 9 + 36 + 3, sum b_j^2 = 9 + 36 + 3,
    # sum a_i^2 = 72 -> precision 1, recall 2/3, F = 0.8
    split = isbi.segments(np.array([[0, 1, 0, 1, 1]] * 3, bool))
    assert isbi.rand_counts(truth, split) == (48, 72, 48)
    assert isbi.rand_fscore(*isbi.rand_counts(truth, split)) == pytest.approx(0.8)


def test_foreground_rand_error_takes_the_best_threshold_and_pools_images():
    truth = two_cells()
    # P(cell): 0.9 in the cells, 0.3 in the true membrane: thresholds < 0.3 merge the
    # cells, 0.3..0.8 separate them exactly
    prob = np.where(truth > 0, 0.9, 0.3).astype(np.float32)
    out = isbi.foreground_rand_error([truth], [prob])
    assert out["error"] == pytest.approx(0.0)
    assert 0.3 <= out["threshold"] < 0.9
    assert out["at_half"] == pytest.approx(0.0)
    assert out["by_threshold"][0.0] == pytest.approx(1 / 3)  # merged, as by hand
    # two images pooled: counts add before the F-score (as over the challenge's stack)
    merged = np.ones_like(prob)
    pooled = isbi.foreground_rand_error([truth, truth], [prob, merged], thresholds=[0.5])
    assert pooled["error"] == pytest.approx(1 - isbi.rand_fscore(72 + 72, 72 + 72, 72 + 144))


def test_pixel_error():
    truth = two_cells()
    prob = np.where(truth > 0, 0.9, 0.2).astype(np.float32)
    prob[0, 0] = 0.4  # one cell pixel called membrane at 0.5
    out = isbi.pixel_error([truth], [prob])
    assert out["at_half"] == pytest.approx(1 / 15)
    assert out["error"] == pytest.approx(0.0)  # at 0.3 or 0.4 all are right
    assert 0.25 < out["threshold"] < 0.45


def test_close_to_scikit_image_adapted_rand_error_with_singletons():
    """scikit-image counts pairs of distinct pixels (n (n - 1)), the challenge n^2:
    the same up to O(1 / segment size); they differ on tiny segments."""
    from skimage.metrics import adapted_rand_error

    rng = np.random.default_rng(0)
    truth = np.full((128, 128), 255, np.uint8)
    truth[::32] = truth[:, ::32] = 0  # 16 cells
    prob = np.where(truth > 0, 0.8, 0.2) + rng.normal(0, 0.25, truth.shape)
    ours = isbi.foreground_rand_error([truth], [prob], thresholds=[0.5])["error"]
    pred = isbi.segments(prob > 0.5)
    # singletons for predicted membrane, as the challenge takes them
    single = np.flatnonzero(pred == 0)
    pred[pred == 0] = pred.max() + 1 + np.arange(len(single))
    theirs = adapted_rand_error(isbi.segments(truth > 0), pred)[0]
    assert ours == pytest.approx(theirs, abs=2e-3)
    merged = np.ones((3, 5), np.int32)
    assert adapted_rand_error(isbi.segments(two_cells() > 0), merged)[0] != pytest.approx(1 / 3)


@pytest.mark.parametrize("shift", [0, 1])
def test_warping_error_forgives_shifted_borders_but_not_mergers(shift):
    truth = np.full((40, 40), 255, np.uint8)
    truth[:, 18:21] = 0  # a vertical membrane between two cells
    pred = np.roll(truth, shift, axis=1)  # the same border moved: topology kept
    assert isbi.warping_error([truth], [(pred > 0).astype(np.float32)])["errors"] == 0
    gap = pred.copy()
    gap[10:13, 15:25] = 255  # a hole in the membrane: the cells merge
    out = isbi.warping_error([truth], [(gap > 0).astype(np.float32)])
    assert 0 < out["errors"] <= 3 * 3
    assert out["error"] == pytest.approx(out["errors"] / truth.size)


def test_warping_error_counts_a_split():
    truth = np.full((30, 30), 255, np.uint8)
    truth[:, :2] = truth[:, -2:] = 0  # one cell between two membranes
    pred = truth.copy()
    pred[14, :] = 0  # a false membrane across the cell: a split
    out = isbi.warping_error([truth], [(pred > 0).astype(np.float32)])
    assert out["errors"] > 0


def test_scribbles_stay_in_their_class_and_are_thin():
    bench = _load("bench_unet")
    truth = np.zeros((96, 96), np.int64)
    truth[20:50, 20:50] = 1
    truth[70:74, 70:74] = 2
    truth[80:83, 10:13] = 2
    s = bench.scribbles(truth, strokes=3, seed=0, ignore=255)
    s2 = bench.scribbles(truth, strokes=3, seed=0, ignore=255)
    assert np.array_equal(s, s2)  # seeded
    drawn = s != 255
    assert (s[drawn] == truth[drawn]).all()  # never across a border
    assert set(np.unique(s[drawn])) == {0, 1, 2}  # every class gets strokes
    assert drawn.mean() < 0.2  # sparse
    # 3 px wide: no 4 x 4 block of a stroke
    from scipy import ndimage as ndi

    assert not ndi.binary_erosion(drawn, np.ones((4, 4), bool)).any()


def test_simple_point_table_matches_counting_components():
    """In a 3 x 3 neighbourhood surrounded by membrane, flipping the centre is simple
    exactly when it changes neither the number of 4-connected cells nor of
    8-connected membrane regions."""
    from scipy import ndimage as ndi

    def counts(x):
        cells = ndi.label(x)[1]  # 4-connected
        membrane = ndi.label(~x, np.ones((3, 3), bool))[1]
        return cells, membrane

    for code in range(256):
        x = np.zeros((5, 5), bool)
        for k, (dy, dx) in enumerate(isbi._RING):
            x[2 + dy, 2 + dx] = bool(code >> k & 1)
        for centre in (False, True):
            x[2, 2] = centre
            before = counts(x)
            x[2, 2] = not centre
            assert (counts(x) == before) == bool(isbi.SIMPLE[code]), (code, centre)
