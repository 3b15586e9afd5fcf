"""Training data for fine-tuning: (image, instance labels) pairs, checked up front.

Every pair is read and checked before training starts, so a bad file stops the run
at once with one :class:`InputError` that names every file at fault, rather than
hours later. Labels are instance labels (0 = background, each object its own id);
``semantic=True`` reads class labels instead and makes each connected region of a
class one object.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
# Lossy formats would blur ids into one another: labels are TIFF or PNG only.
LABEL_FILE_SUFFIXES = (".tif", ".tiff", ".png")
# A label file for image ``x.tif`` is ``x`` + one of these + a label file suffix, e.g.
# ``x.tif`` (in another folder), ``x_labels.tif``, ``x_masks.png``.
LABEL_STEM_SUFFIXES = ("", "_labels", "_label", "_masks", "_mask", "_instances", "_gt")
MAX_LISTED = 5  # problems named in one error message


@dataclass
class TrainingPair:
    """One labelled image."""

    image: np.ndarray  # 2D gray or H x W x 3|4, as ``image.io.load_image`` returns
    instances: np.ndarray  # H x W int32, 0 = background, one id per object
    name: str  # the image's file stem or layer name

    @property
    def n_objects(self) -> int:
        ids = np.unique(self.instances)
        return int((ids > 0).sum())


def _listed(source, suffixes) -> list[Path]:
    """Files of ``source`` (a folder, one file, or a list of files) with ``suffixes``."""
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            return sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
            )
        return [path]
    return [Path(p) for p in source]


def match_label_files(images: Sequence[Path], labels: Sequence[Path]):
    """Pair image files with label files by stem (see :data:`LABEL_STEM_SUFFIXES`).

    Returns ``(matched [(image, label)], problems [str])``. A file that is another
    image's label file is not an image itself (images and labels may share a folder).
    """
    by_stem: dict[str, list[Path]] = {}
    for p in labels:
        by_stem.setdefault(p.stem, []).append(p)

    def candidates(image: Path) -> list[Path]:
        found = [q for s in LABEL_STEM_SUFFIXES for q in by_stem.get(image.stem + s, [])]
        return [q for q in found if q.resolve() != image.resolve()]

    found = {image: candidates(image) for image in images}
    taken = {q.resolve() for qs in found.values() for q in qs}
    named: dict[str, list[Path]] = {}
    for image in found:
        if image.resolve() not in taken:
            named.setdefault(image.stem, []).append(image)
    matched, problems = [], []
    for image, qs in found.items():
        if image.resolve() in taken:
            continue  # e.g. x_labels.tif beside x.tif
        if len(named[image.stem]) > 1:  # labels, runs and resumes know images by name
            problems.append(
                f"{image}: another image has the name {image.stem!r} "
                f"({', '.join(q.name for q in named[image.stem])}); rename one"
            )
        elif not qs:
            problems.append(f"{image}: no label file (expected {image.stem}.tif, _labels, ...)")
        elif len(qs) > 1:
            problems.append(f"{image}: several label files ({', '.join(q.name for q in qs)})")
        else:
            matched.append((image, qs[0]))
    return matched, problems


def pairs_from_folders(images, labels, semantic: bool = False) -> list[TrainingPair]:
    """Read and check every (image, labels) pair of two folders or two file lists.

    Parameters
    ----------
    images
        A folder of images (TIFF, PNG, JPEG, BMP), one image file or a list of files.
    labels
        A folder (may be ``images`` itself) or list of label files (TIFF or PNG). The
        label file of ``x.tif`` has the stem ``x`` or ``x`` plus one of
        :data:`LABEL_STEM_SUFFIXES` (``x_labels.tif``, ``x_masks.png``, ...).
    semantic
        Labels are classes, not instances: each connected region of a class becomes
        one object.

    Raises
    ------
    InputError
        One error naming every file at fault: no images, an image without a label
        file, an unreadable file, labels whose size differs from the image's, labels
        without any object.
    """
    from napari_samphase.core.image.io import load_image, read_labels

    image_files = _listed(images, IMAGE_SUFFIXES)
    label_files = _listed(labels, LABEL_FILE_SUFFIXES)
    if not image_files:
        raise InputError(f"{images}: no images found ({', '.join(IMAGE_SUFFIXES)})")
    matched, problems = match_label_files(image_files, label_files)
    pairs = []
    for image_file, label_file in matched:
        try:
            image = load_image(image_file)
        except InputError as exc:
            problems.append(str(exc))
            image = None
        try:
            lab = read_labels(label_file)
        except InputError as exc:
            problems.append(str(exc))
            continue
        if image is None:
            continue
        pair = _checked(image_file.stem, image, lab, semantic, problems, label_file)
        if pair is not None:
            pairs.append(pair)
    _raise(problems)
    return pairs


def pairs_from_arrays(items: Iterable, semantic: bool = False) -> list[TrainingPair]:
    """Check in-memory ``(name, image, labels)`` triples (e.g. napari layers' data).

    Parameters
    ----------
    items
        ``(name, image, labels)`` triples; ``name`` names the pair in errors and in the
        checkpoint's data summary.
    semantic
        As in :func:`pairs_from_folders`.

    Raises
    ------
    InputError
        One error naming every pair at fault (as :func:`pairs_from_folders`).
    """
    from napari_samphase.core.image.convert import check_image

    problems, pairs = [], []
    items = list(items)
    if not items:
        raise InputError("no training images given")
    for name, image, lab in items:
        try:
            image = check_image(image, name=str(name))
        except InputError as exc:
            problems.append(str(exc))
            continue
        pair = _checked(str(name), image, np.asarray(lab), semantic, problems, name)
        if pair is not None:
            pairs.append(pair)
    _raise(problems)
    return pairs


def _checked(name, image, labels, semantic, problems, where) -> TrainingPair | None:
    """The pair, or None with the reason appended to ``problems``."""
    from napari_samphase.core.image.labels import check_labels

    try:
        labels = check_labels(labels)
    except InputError as exc:
        problems.append(f"{where}: {exc}")
        return None
    if labels.shape != image.shape[:2]:
        problems.append(
            f"{where}: labels are {labels.shape[0]}x{labels.shape[1]} but the image is "
            f"{image.shape[0]}x{image.shape[1]}"
        )
        return None
    instances = semantic_to_instances(labels) if semantic else labels
    if not instances.any():
        problems.append(f"{where}: the labels hold no object")
        return None
    if instances.max() > np.iinfo(np.int32).max:
        problems.append(f"{where}: label ids above {np.iinfo(np.int32).max}")
        return None
    return TrainingPair(image, instances.astype(np.int32, copy=False), str(name))


def semantic_to_instances(classes: np.ndarray) -> np.ndarray:
    """Class labels -> instance labels: each 4-connected region of a class value > 0
    is one object (two touching regions of different classes stay two objects)."""
    from scipy import ndimage as ndi

    out = np.zeros(classes.shape, np.int32)
    n = 0
    for value in np.unique(classes):
        if value <= 0:
            continue
        comp, k = ndi.label(classes == value)
        out[comp > 0] = comp[comp > 0] + n
        n += k
    return out


def _raise(problems: list[str]) -> None:
    if not problems:
        return
    shown = "; ".join(problems[:MAX_LISTED])
    more = f"; and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
    what = "pair" if len(problems) == 1 else "pairs"
    raise InputError(f"{len(problems)} training {what} cannot be used: {shown}{more}")


def split_pairs(
    pairs: Sequence[TrainingPair], val_fraction: float, seed: int = 0
) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """Split by image into (train, validation), seeded; both keep the given order.

    One image: no validation. Two or more and ``val_fraction > 0``: at least one of
    each.

    Parameters
    ----------
    pairs
        The training pairs.
    val_fraction
        Fraction of the images kept for validation, in [0, 1).
    seed
        Seed of the split.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise InputError(f"val_fraction must be in [0, 1), not {val_fraction}")
    n = len(pairs)
    if n < 2 or val_fraction == 0.0:
        return list(pairs), []
    n_val = min(max(int(round(n * val_fraction)), 1), n - 1)
    val = set(np.random.default_rng(seed).permutation(n)[:n_val].tolist())
    train = [p for i, p in enumerate(pairs) if i not in val]
    return train, [p for i, p in enumerate(pairs) if i in val]
