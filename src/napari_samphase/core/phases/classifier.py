"""Phases learned from a user's assigned masks ("assign" clicks).

Anchored k-means (:func:`~napari_samphase.core.phases.clustering.find_phases`'s
default) puts each phase centre on its examples and gives every other mask the
nearest centre, with every feature weighted as the standardisation weighs it. A
classifier learns from the examples instead:

- ``forest``: a random forest on the examples' features. From a few examples per
  phase it finds the features that separate them (size, say) and ignores those
  that vary within a phase (gray level, say), which a nearest-centre rule cannot.
  One example per phase tells it nothing about which features matter.
- ``spreading``: label spreading (Zhou et al. 2004) over the k-nearest-neighbour
  graph of all masks in feature space: a phase's label flows along chains of
  similar masks, so a phase spread along some feature is followed from one
  example, where a nearest-centre rule cuts it across.

Both need an example in every phase (a classifier cannot invent a phase it never
saw): a request that leaves a phase without one is refused with one
:class:`InputError`; ``find_phases(assign_method="auto")`` uses a classifier only
when every phase has an example and anchored k-means otherwise.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from napari_samphase.core.errors import InputError, check_choice

# Trees in the forest: the vote over 200 stays stable from seed to seed with a few
# examples; fitting them on a few dozen examples takes a fraction of a second.
N_TREES = 200
# Neighbours per mask in the spreading graph (scikit-learn's default), and the share
# of a mask's label that comes from its neighbours at each step. scikit-learn's
# default, 0.2, damps a label by 0.2 per hop, so its iteration stops after about 5
# hops and leaves masks farther from every example unlabelled; 0.99 is the value of
# Zhou et al.'s method, which carries labels along the whole graph.
N_NEIGHBORS = 7
ALPHA = 0.99


def _forest(z: np.ndarray, idx: np.ndarray, cls: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.ensemble import RandomForestClassifier

    # No bootstrap: with a handful of examples, a resample drops a third of them
    # (often a phase's only one); the trees still differ by their random features.
    forest = RandomForestClassifier(
        n_estimators=N_TREES,
        class_weight="balanced",  # a phase with one example counts like one with five
        bootstrap=False,
        random_state=seed,
        n_jobs=1,
    )
    return forest.fit(z[idx], cls).predict(z)


def _knn_graph(k: int):
    """Kernel for LabelSpreading: the symmetric k-nearest-neighbour graph. Its own
    ``kernel="knn"`` graph is directed (a mask's neighbours, not the masks that have
    it as a neighbour), so a label cannot cross a gap in the one direction where no
    mask counts one across it among its k nearest."""

    def kernel(a, b):
        from sklearn.neighbors import kneighbors_graph

        w = kneighbors_graph(a, k, include_self=False)
        return w.maximum(w.T)

    return kernel


def _spreading(z: np.ndarray, idx: np.ndarray, cls: np.ndarray, seed: int) -> np.ndarray:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.semi_supervised import LabelSpreading

    y = np.full(len(z), -1, np.int64)
    y[idx] = cls
    model = LabelSpreading(
        kernel=_knn_graph(min(N_NEIGHBORS, len(z) - 1)), alpha=ALPHA, max_iter=2000, tol=1e-6
    )
    with warnings.catch_warnings():  # unreached masks divide 0 by 0: handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(z, y)
    dist = model.label_distributions_
    pred = model.classes_[np.argmax(np.nan_to_num(dist), 1)]
    # Masks no label reached (a neighbour-graph component without an example) go to
    # the nearest example centre, as anchored k-means would place them.
    lost = ~np.isfinite(dist).all(1) | (np.nan_to_num(dist).sum(1) <= 0)
    if lost.any():
        classes = np.unique(cls)
        centres = np.stack([z[idx[cls == c]].mean(0) for c in classes])
        d = ((z[lost, None, :] - centres[None]) ** 2).sum(-1)
        pred[lost] = classes[np.argmin(d, 1)]
    return pred


# name -> (standardised features n x F, example rows, their phases, seed) -> phase per row
CLASSIFIERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]] = {
    "forest": _forest,
    "spreading": _spreading,
}


def missing_phases(phases, n_phases: int) -> list[int]:
    """Phases 1..n_phases that no example names."""
    named = set(np.asarray(phases).tolist())
    return [p for p in range(1, n_phases + 1) if p not in named]


def check_every_phase(phases, n_phases: int, what: str) -> None:
    """One :class:`InputError` when a phase in 1..n_phases has no example."""
    missing = missing_phases(phases, n_phases)
    if missing:
        which = (
            f"phase {missing[0]} has"
            if len(missing) == 1
            else f"phases {', '.join(map(str, missing))} have"
        )
        raise InputError(
            f"{what} needs an assigned mask in every phase: {which} no assigned mask "
            "(assign one, or group with assign method 'kmeans' or 'auto')"
        )


def example_rows(examples: dict[int, int], n: int, ids=None) -> tuple[np.ndarray, np.ndarray]:
    """(row indices, phases) of ``examples``, whose keys are rows of an ``n``-mask
    feature table, or mask ids when ``ids`` (the mask id of each row) is given."""
    if not examples:
        raise InputError("the mask classifier needs at least one example (mask -> phase)")
    phases = np.array([int(p) for p in examples.values()], np.int64)
    if (phases < 1).any():
        raise InputError("phase ids of examples start at 1 (0 is the background)")
    if ids is None:
        rows = np.array([int(r) for r in examples], np.int64)
        bad = rows[(rows < 0) | (rows >= n)]
        if len(bad):
            raise InputError(f"example row {int(bad[0])} is outside the {n} masks")
        return rows, phases
    index = {int(m): j for j, m in enumerate(np.asarray(ids).tolist())}
    bad = [int(m) for m in examples if int(m) not in index]
    if bad:
        raise InputError(f"example mask id {bad[0]} is not among the masks")
    return np.array([index[int(m)] for m in examples], np.int64), phases


def fit_phases(z: np.ndarray, idx: np.ndarray, phases: np.ndarray, method: str, seed: int = 0):
    """Phase per row of ``z`` by the named classifier; the examples keep theirs."""
    if len(np.unique(phases)) == 1:  # one phase named: nothing to tell apart
        return np.full(len(z), phases[0], np.int64)
    pred = np.asarray(CLASSIFIERS[method](z, idx, phases, seed), np.int64)
    pred[idx] = phases  # a user's assignment is final, whatever the fit says
    return pred


def classify_masks(
    features: np.ndarray,
    examples: dict[int, int],
    method: str = "forest",
    seed: int = 0,
    ids: np.ndarray | None = None,
    n_phases: int | None = None,
    standardize: bool = True,
) -> np.ndarray:
    """Phase of every mask, learned from a few masks whose phase the user assigned.

    Parameters
    ----------
    features
        n masks x F features (one row per mask), e.g. ``PhaseResult.features``.
    examples
        Row index -> phase id (1-based), or mask id -> phase id when ``ids`` is
        given. Examples keep their phase in the result.
    method
        A name in :data:`CLASSIFIERS`: ``"forest"`` (random forest, balanced class
        weights) or ``"spreading"`` (label spreading over the k-nearest-neighbour
        graph of the masks).
    seed
        Random seed (same seed, same result).
    ids
        The mask id of each row, when ``examples`` are keyed by mask id.
    n_phases
        Number of phases the result must cover: every phase 1..n_phases needs an
        example (a classifier cannot find a phase it was never shown). Default:
        the phases the examples name.
    standardize
        Scale every column to zero mean and unit variance first (the neighbour
        graph of spreading depends on it). Pass False for features that are
        standardised already, such as :func:`find_phases`' group-weighted ones.

    Returns
    -------
    numpy.ndarray
        Phase id (int64) of every row.
    """
    check_choice(method, tuple(CLASSIFIERS), "mask classifier")
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise InputError(f"features must be a 2-D array (masks x features), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError("features must be finite (no NaN or inf)")
    idx, phases = example_rows(examples, len(x), ids)
    if n_phases is not None:
        check_every_phase(phases, n_phases, f"mask classifier {method!r}")
    if standardize:
        std = x.std(0)
        x = (x - x.mean(0)) / np.where(std > 1e-12, std, 1.0)
    return fit_phases(x, idx, phases, method, seed)
