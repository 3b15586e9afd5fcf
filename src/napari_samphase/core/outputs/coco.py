"""COCO instance annotations: every mask an instance, its phase the category.

Masks are stored as COCO run-length encodings (RLE): run lengths of the mask read in
column-major order (down the first column, then the next), starting with a run of
zeros, either as a list of integers ("uncompressed", as COCO writes crowd regions) or
as COCO's compact string (each run, after the first two taken as differences to the
run two before, written 5 bits per character, offset by 48, with a continuation bit),
which ``pycocotools.mask.decode`` reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError

# The category of every instance when no phases are given.
PARTICLE_CATEGORY = {1: "particle"}


def rle_counts(mask: np.ndarray) -> list[int]:
    """Run lengths of ``mask`` in column-major order, the first run of zeros (possibly
    empty)."""
    flat = np.asarray(mask, bool).ravel(order="F")
    if flat.size == 0:
        return [0]
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    return [0, *runs] if flat[0] else runs


def compress_counts(counts: list[int]) -> str:
    """COCO's compact string of run lengths (what pycocotools' ``rleToString`` writes)."""
    out = []
    for i, run in enumerate(counts):
        x = int(run) - (int(counts[i - 2]) if i > 2 else 0)
        more = True
        while more:
            c = x & 0x1F
            x >>= 5  # arithmetic shift: a negative difference ends at -1
            more = x != -1 if c & 0x10 else x != 0
            out.append(chr((c | 0x20 if more else c) + 48))
    return "".join(out)


def rle_encode(mask: np.ndarray, compressed: bool = True) -> dict:
    """``{"size": [height, width], "counts": ...}`` of a 2D boolean mask."""
    mask = np.asarray(mask)
    counts = rle_counts(mask)
    return {
        "size": [int(mask.shape[0]), int(mask.shape[1])],
        "counts": compress_counts(counts) if compressed else counts,
    }


def _category_names(ids, categories) -> list[dict]:
    names = dict(categories or {})
    return [
        {"id": int(c), "name": str(names.get(c, f"phase {c}")), "supercategory": "phase"}
        for c in sorted(set(ids) | set(names))
    ]


def coco_instances(
    labels: np.ndarray,
    phase_of_label: dict[int, int] | None = None,
    categories: dict[int, str] | None = None,
    file_name: str = "",
    image_id: int = 1,
    pixel_size=None,
    compressed: bool = True,
) -> dict:
    """A COCO instances dict of one image's instance labels.

    Parameters
    ----------
    labels : np.ndarray
        H x W instance labels, 0 = none; each other id is one instance.
    phase_of_label : dict, optional
        Instance id -> phase id, the instance's ``category_id``. None: every instance
        is category 1, ``"particle"``.
    categories : dict, optional
        Phase id -> name; phases named here are listed even without instances. Unnamed
        phases are ``"phase K"``.
    file_name, image_id : str, int
        The image's entry in ``images``.
    pixel_size : PixelSize, optional
        Goes into ``info`` (``pixel_size_um``, None when unknown): COCO's ``area`` and
        ``bbox`` are in pixels, as COCO defines them.
    compressed : bool
        RLE as COCO's compact string (default) or a list of run lengths.

    Returns
    -------
    dict
        ``info``, ``images``, ``annotations`` (``id``, ``image_id``, ``category_id``,
        ``segmentation`` RLE, ``area``, ``bbox`` [x, y, width, height], ``iscrowd`` 0,
        ``instance_id``: the id in ``labels``) and ``categories``.
    """
    from scipy import ndimage as ndi

    labels = np.asarray(labels)
    if labels.ndim != 2 or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"COCO export needs 2D integer labels, got {labels.dtype} {labels.shape}")
    labels = labels.astype(np.int64, copy=False)
    ids = np.unique(labels[labels > 0])
    if phase_of_label is None:
        phase_of_label = dict.fromkeys(ids.tolist(), 1)
        categories = PARTICLE_CATEGORY if categories is None else categories
    missing = [int(i) for i in ids if int(i) not in phase_of_label]
    if missing:
        raise InputError(f"COCO export: no phase for instance(s) {missing[:5]}")
    boxes = ndi.find_objects(labels)
    area = np.bincount(labels.ravel())
    annotations = []
    for n, i in enumerate(ids.tolist(), 1):
        rows, cols = boxes[i - 1]
        annotations.append(
            {
                "id": n,
                "image_id": image_id,
                "category_id": int(phase_of_label[i]),
                "segmentation": rle_encode(labels == i, compressed),
                "area": int(area[i]),
                "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                "iscrowd": 0,
                "instance_id": i,
            }
        )
    known = pixel_size is not None and pixel_size.known
    return {
        "info": {
            "description": "napari-samphase instances: each mask an instance, its phase "
            "the category",
            "pixel_size_um": pixel_size.um if known else None,
        },
        "images": [
            {
                "id": image_id,
                "file_name": file_name,
                "height": int(labels.shape[0]),
                "width": int(labels.shape[1]),
            }
        ],
        "annotations": annotations,
        "categories": _category_names((int(p) for p in phase_of_label.values()), categories),
    }


def write_coco(coco: dict, path: str | Path) -> None:
    """Write a COCO dict as JSON (what ``pycocotools.coco.COCO(path)`` loads)."""
    with open(path, "w") as fh:
        json.dump(coco, fh)
