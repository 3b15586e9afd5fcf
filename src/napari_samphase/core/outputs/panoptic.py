"""Panoptic phase maps: one map that holds both the phase of every pixel and the
particle it belongs to, in the COCO panoptic convention.

A panoptic map is a segment id per pixel (0 = void) plus one record per segment
(its category, here the phase, and whether that category is a "thing", counted
particle by particle, or "stuff", one region per image such as the matrix).

How a phase map and instance masks become segments (:func:`panoptic_from_phases`):

- Stuff phases (default: the background phase 0 when present, else the phase of
  largest area, "the matrix") give one segment each: all their pixels.
- Every other phase is a thing phase. Each instance mask whose majority phase is a
  thing phase becomes one segment of that phase, made of the mask's pixels *of that
  phase*. Mask pixels of another phase are not forced into the mask's phase: they
  stay with their own phase (its stuff segment, or a component below), so the phase
  of every pixel is always the phase map's. For the masks mode, whose phase map is
  drawn mask by mask, masks are uniform and nothing is split.
- Thing-phase pixels left over (in no mask, or a mask's minority phase) form one
  segment per 4-connected component of equal phase: the pixel modes draw phases
  without masks, and their particles are these components.
- Phases listed as ``void`` give void pixels (segment 0), e.g. unlabelled truth.

So :func:`phase_and_instance` gives back the phase map exactly, void pixels
excepted, and the thing segments as instance labels.

File format (:func:`write_panoptic` / :func:`read_panoptic`): COCO panoptic, an RGB
PNG with id = R + 256 G + 256^2 B per pixel and a JSON with "images",
"annotations" (one per image, its "segments_info") and "categories".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from napari_samphase.core.errors import InputError
from napari_samphase.core.image.labels import majority_value
from napari_samphase.core.outputs.render import phase_color

# Ids are stored in the three 8-bit channels of an RGB PNG.
MAX_SEGMENT_ID = 256**3 - 1
# Default file names beside the other per-image outputs (NAME_labels.tif, ...).
PNG_SUFFIX = "_panoptic.png"
JSON_SUFFIX = "_panoptic.json"
LABEL_SUFFIXES = (".tif", ".tiff", ".png")


@dataclass
class Panoptic:
    """A panoptic map.

    segments: H x W int32 segment ids, 0 = void.
    info: one dict per segment: ``id``, ``category_id`` (the phase), ``isthing``
        (bool), ``area`` (pixels), ``bbox`` ([x, y, width, height], COCO), ``iscrowd``.
    categories: one dict per category: ``id``, ``name``, ``isthing`` (bool),
        ``color`` ([r, g, b], 0..255).
    """

    segments: np.ndarray
    info: list[dict] = field(default_factory=list)
    categories: list[dict] = field(default_factory=list)

    def stuff_ids(self) -> tuple[int, ...]:
        """Ids of the categories that are stuff."""
        return tuple(int(c["id"]) for c in self.categories if not c["isthing"])


def _category_name(phase: int, names) -> str:
    if names is not None:
        if isinstance(names, Mapping):
            if phase in names:
                return str(names[phase])
        elif 0 <= phase < len(names):
            return str(names[phase])
    return "background" if phase == 0 else f"phase {phase}"


def _color(phase: int) -> list[int]:
    return [int(v) for v in np.round(np.asarray(phase_color(int(phase))) * 255)]


def default_stuff(phase_labels: np.ndarray, void: Iterable[int] = ()) -> tuple[int, ...]:
    """The stuff phase when none is named: the background phase 0 when present, else
    the phase of largest area (the matrix the particles sit in). Void phases never
    are; ``()`` when every pixel is void."""
    phase_labels = np.asarray(phase_labels)
    area = np.bincount(phase_labels.ravel().astype(np.int64))
    area[[v for v in void if 0 <= v < len(area)]] = 0
    if len(area) and area[0] > 0:
        return (0,)
    return (int(np.argmax(area)),) if area.any() else ()


def _check_map(arr, what: str, shape=None) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise InputError(f"{what} must be 2D, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{what} must hold integers, got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise InputError(f"{what} has negative values")
    if shape is not None and arr.shape != shape:
        raise InputError(f"{what} shape {arr.shape} does not match the phase map {shape}")
    return arr.astype(np.int64, copy=False)


def _segment_info(segments: np.ndarray, category_of: dict[int, int], isthing: dict[int, bool]):
    from scipy import ndimage as ndi

    area = np.bincount(segments.ravel())
    boxes = ndi.find_objects(segments)
    info = []
    for sid in sorted(category_of):
        rows, cols = boxes[sid - 1]
        cat = category_of[sid]
        info.append(
            {
                "id": int(sid),
                "category_id": int(cat),
                "isthing": bool(isthing[cat]),
                "area": int(area[sid]),
                "bbox": [cols.start, rows.start, cols.stop - cols.start, rows.stop - rows.start],
                "iscrowd": 0,
            }
        )
    return info


def panoptic_from_phases(
    phase_labels: np.ndarray,
    labels: np.ndarray | None = None,
    stuff: Iterable[int] | None = None,
    names: Sequence[str] | Mapping[int, str] | None = None,
    void: Iterable[int] = (),
) -> Panoptic:
    """Combine a phase map and instance masks into one panoptic map.

    Parameters
    ----------
    phase_labels : H x W integer phase per pixel (``NAME_phases.tif``).
    labels : H x W instance masks, 0 = none (``NAME_labels.tif``); None: no masks,
        the particles are the connected components of each thing phase.
    stuff : phases that are stuff (one segment each); default :func:`default_stuff`.
    names : category names, by phase id (sequence or mapping); default
        "background" for 0 and "phase K". With a sequence, every phase it names is
        a category even where absent from this image.
    void : phases whose pixels are void (segment 0), e.g. unlabelled truth.

    Returns
    -------
    Panoptic
        Segment ids: mask segments in order of mask id, then leftover components,
        then one per stuff phase, so thing segments are 1..n_things. The rules are in
        the module docstring; the phase of every non-void pixel is kept.
    """
    from skimage.measure import label as connected

    phase = _check_map(phase_labels, "phase map")
    void = {int(v) for v in void}
    stuff = set(default_stuff(phase, void) if stuff is None else (int(s) for s in stuff)) - void
    present = {int(p) for p in np.unique(phase)} - void
    if names is None:
        declared = set()
    else:  # a mapping names its keys, a sequence (tuple, list, array) 0..len-1
        declared = set(names) if isinstance(names, Mapping) else set(range(len(names)))
    cats = sorted((present | stuff | declared) - void)
    isthing = {c: c not in stuff for c in cats}
    is_thing_px = np.isin(phase, [c for c in cats if isthing[c]])
    segments = np.zeros(phase.shape, np.int64)
    category_of: dict[int, int] = {}
    n = 0
    if labels is not None:
        labels = _check_map(labels, "instance labels", phase.shape)
        ids, inv, major = majority_value(labels, phase)
        keep = (ids > 0) & np.array([isthing.get(int(p), False) for p in major], bool)
        seg_of = np.zeros(len(ids), np.int64)
        seg_of[keep] = np.arange(1, int(keep.sum()) + 1)
        sel = keep[inv] & (phase == major[inv])
        segments[sel] = seg_of[inv[sel]]
        category_of.update({int(s): int(p) for s, p in zip(seg_of[keep], major[keep], strict=True)})
        n = int(keep.sum())
    # Thing-phase pixels in no mask segment: one segment per component of one phase
    # (phase + 1 so that a thing phase 0 is not label()'s background).
    rest = is_thing_px & (segments == 0)
    comp = connected(np.where(rest, phase + 1, 0), background=0, connectivity=1)
    if comp.max(initial=0):
        c_rest, p_rest = comp[rest], phase[rest]
        first, at = np.unique(c_rest, return_index=True)
        segments[rest] = c_rest + n
        category_of.update({int(c) + n: int(p) for c, p in zip(first, p_rest[at], strict=True)})
        n += int(comp.max())
    for p in sorted(stuff & present):
        n += 1
        segments[phase == p] = n
        category_of[n] = p
    if n > MAX_SEGMENT_ID:
        raise InputError(f"{n} segments: more than a panoptic PNG can hold ({MAX_SEGMENT_ID})")
    segments = segments.astype(np.int32)
    categories = [
        {"id": c, "name": _category_name(c, names), "isthing": isthing[c], "color": _color(c)}
        for c in cats
    ]
    return Panoptic(segments, _segment_info(segments, category_of, isthing), categories)


def phase_and_instance(panoptic: Panoptic, void_phase: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The phase map and the instance labels held in a panoptic map.

    Parameters
    ----------
    panoptic : the map.
    void_phase : phase given to void pixels (0: the phase maps' "background or
        unlabelled").

    Returns
    -------
    (phase_labels, instance_labels)
        Phase per pixel (uint8, uint16 beyond 254); instance labels (int32) where
        each thing segment keeps its segment id and stuff and void pixels are 0.
    """
    segments = np.asarray(panoptic.segments).astype(np.int64, copy=False)
    size = int(segments.max(initial=0)) + 1
    cat = np.full(size, void_phase, np.int64)
    thing = np.zeros(size, bool)
    for s in panoptic.info:
        if s["id"] < size:
            cat[s["id"]] = s["category_id"]
            thing[s["id"]] = s["isthing"]
    phase = cat[segments]
    dtype = np.uint8 if phase.max(initial=0) < 255 else np.uint16
    return phase.astype(dtype), np.where(thing[segments], segments, 0).astype(np.int32)


def check_panoptic(panoptic: Panoptic, name: str = "panoptic map", void_label: int = 0) -> None:
    """One clear :class:`InputError` unless the records describe the map: every
    non-void id in the map has exactly one record and vice versa, areas match, and
    each record's category is listed."""
    segments = np.asarray(panoptic.segments)
    if segments.ndim != 2:
        raise InputError(f"{name}: segment map must be 2D, got shape {segments.shape}")
    ids, counts = np.unique(segments, return_counts=True)
    in_map = {int(i): int(c) for i, c in zip(ids, counts, strict=True) if i != void_label}
    listed = [int(s["id"]) for s in panoptic.info]
    if len(set(listed)) != len(listed):
        raise InputError(f"{name}: a segment id is listed twice in segments_info")
    if void_label in listed:
        raise InputError(f"{name}: segment id {void_label} is void and cannot have a record")
    if set(listed) != set(in_map):
        only_map = sorted(set(in_map) - set(listed))[:5]
        only_info = sorted(set(listed) - set(in_map))[:5]
        raise InputError(
            f"{name}: segment ids in the map and in segments_info differ "
            f"(map only: {only_map}, segments_info only: {only_info})"
        )
    bad = [s["id"] for s in panoptic.info if int(s["area"]) != in_map[int(s["id"])]]
    if bad:
        raise InputError(f"{name}: area of segment(s) {bad[:5]} does not match the map")
    known = {int(c["id"]) for c in panoptic.categories}
    missing = sorted({int(s["category_id"]) for s in panoptic.info} - known)
    if missing:
        raise InputError(f"{name}: category id(s) {missing} are not in categories")


def encode_ids(segments: np.ndarray) -> np.ndarray:
    """H x W ids -> H x W x 3 uint8 RGB with id = R + 256 G + 256^2 B."""
    segments = np.asarray(segments).astype(np.int64, copy=False)
    if segments.size and (segments.min() < 0 or segments.max() > MAX_SEGMENT_ID):
        raise InputError(f"segment ids must lie in 0..{MAX_SEGMENT_ID} to fit an RGB PNG")
    return np.stack([(segments >> s) & 255 for s in (0, 8, 16)], -1).astype(np.uint8)


def decode_ids(rgb: np.ndarray) -> np.ndarray:
    """H x W x 3 RGB -> H x W int32 ids (R + 256 G + 256^2 B)."""
    rgb = np.asarray(rgb).astype(np.int64)
    return (rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]).astype(np.int32)


def panoptic_json(
    panoptic: Panoptic, png_name: str, file_name: str | None = None, image_id: int | str = 0
) -> dict:
    """The COCO panoptic JSON of one image (``isthing`` as 0/1 on the categories)."""
    h, w = np.asarray(panoptic.segments).shape
    stem = png_name.rsplit(".", 1)[0]
    return {
        "images": [
            {"id": image_id, "file_name": file_name or f"{stem}.png", "height": h, "width": w}
        ],
        "annotations": [
            {
                "image_id": image_id,
                "file_name": png_name,
                "segments_info": [
                    {k: s[k] for k in ("id", "category_id", "area", "bbox", "iscrowd")}
                    for s in panoptic.info
                ],
            }
        ],
        "categories": [
            {
                "id": c["id"],
                "name": c["name"],
                "supercategory": "phase",
                "isthing": int(bool(c["isthing"])),
                "color": list(c["color"]),
            }
            for c in panoptic.categories
        ],
    }


def write_panoptic(
    panoptic: Panoptic,
    png_path: str | Path,
    json_path: str | Path,
    file_name: str | None = None,
    image_id: int | str = 0,
) -> None:
    """Write a panoptic map as COCO panoptic: RGB PNG of ids + JSON.

    Parameters
    ----------
    panoptic : the map (checked with :func:`check_panoptic` first).
    png_path, json_path : where to write; the JSON's annotation names the PNG by
        its file name.
    file_name : the micrograph's file name, for the JSON's "images" entry
        (default: the PNG's stem + ".png").
    image_id : the image id in the JSON.
    """
    from napari_samphase.core.image.io import write_png

    check_panoptic(panoptic)
    png_path, json_path = Path(png_path), Path(json_path)
    write_png(png_path, encode_ids(panoptic.segments))
    doc = panoptic_json(panoptic, png_path.name, file_name, image_id)
    json_path.write_text(json.dumps(doc, indent=1))


def read_panoptic(
    png_path: str | Path, json_path: str | Path, image_id: int | str | None = None
) -> Panoptic:
    """Read a COCO panoptic PNG + JSON (checked with :func:`check_panoptic`).

    Parameters
    ----------
    png_path : RGB PNG of segment ids.
    json_path : COCO panoptic JSON; its annotation is the one whose "file_name" is
        the PNG's name, else the one of ``image_id``, else its only one.
    image_id : pick the annotation by image id.
    """
    from napari_samphase.core.image.io import read_array, require_file

    png_path, json_path = Path(png_path), require_file(json_path)
    rgb = read_array(png_path, "a panoptic PNG")
    if rgb.ndim != 3 or rgb.shape[-1] not in (3, 4):
        raise InputError(f"{png_path}: a panoptic PNG must be RGB, got shape {rgb.shape}")
    try:
        doc = json.loads(json_path.read_text())
        anns, cats = doc["annotations"], doc["categories"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{json_path}: not a COCO panoptic JSON ({exc})") from None
    ann = [a for a in anns if a.get("file_name") == png_path.name]
    if not ann and image_id is not None:
        ann = [a for a in anns if a.get("image_id") == image_id]
    if not ann and len(anns) == 1:
        ann = anns
    if len(ann) != 1:
        raise InputError(f"{json_path}: no single annotation for {png_path.name}")
    categories = [
        {
            "id": int(c["id"]),
            "name": str(c.get("name", c["id"])),
            "isthing": bool(c.get("isthing", 1)),
            "color": [int(v) for v in c.get("color", _color(int(c["id"])))],
        }
        for c in cats
    ]
    thing = {c["id"]: c["isthing"] for c in categories}
    info = [
        {
            "id": int(s["id"]),
            "category_id": int(s["category_id"]),
            "isthing": thing.get(int(s["category_id"]), True),
            "area": int(s["area"]),
            "bbox": [int(v) for v in s.get("bbox", (0, 0, 0, 0))],
            "iscrowd": int(s.get("iscrowd", 0)),
        }
        for s in ann[0]["segments_info"]
    ]
    panoptic = Panoptic(decode_ids(rgb[..., :3]), info, categories)
    check_panoptic(panoptic, str(png_path))
    return panoptic


def panoptic_files(folder: str | Path, stem: str) -> tuple[Path, Path]:
    """The PNG and JSON paths of image ``stem`` in ``folder`` (``STEM_panoptic.*``)."""
    folder = Path(folder)
    return folder / f"{stem}{PNG_SUFFIX}", folder / f"{stem}{JSON_SUFFIX}"


def _find(folder: Path, stem: str, kind: str) -> Path | None:
    paths = [folder / f"{stem}{kind}{ext}" for ext in LABEL_SUFFIXES]
    return next((p for p in paths if p.is_file()), None)


def panoptic_stems(folder: str | Path) -> list[str]:
    """Names of the images ``folder`` holds a panoptic map or a phase map of
    (``STEM_panoptic.json``, ``STEM_phases.tif`` ...), sorted."""
    stems = set()
    for p in Path(folder).iterdir():
        for suffix in (JSON_SUFFIX, *(f"_phases{e}" for e in LABEL_SUFFIXES)):
            if p.name.endswith(suffix) and len(p.name) > len(suffix):
                stems.add(p.name[: -len(suffix)])
    return sorted(stems)


def read_phase_instance(folder: str | Path, stem: str, void_phase: int = 0):
    """(phase map, instance labels or None) of image ``stem`` in ``folder``, or None.

    Parameters
    ----------
    folder : a folder of results or ground truth.
    stem : the image's name without suffix.
    void_phase : phase for void pixels of a panoptic PNG (see
        :func:`phase_and_instance`).

    Looks for ``STEM_panoptic.png`` + ``STEM_panoptic.json`` first, then
    ``STEM_phases`` and ``STEM_labels`` (.tif, .tiff or .png) as ``segment --phases``
    writes them; without ``STEM_labels`` the labels are None (the particles are then
    the connected components of each thing phase). None when there is no phase map.
    """
    from napari_samphase.core.image.io import read_labels

    folder = Path(folder)
    png, js = panoptic_files(folder, stem)
    if png.is_file() and js.is_file():
        return phase_and_instance(read_panoptic(png, js), void_phase)
    phase_path = _find(folder, stem, "_phases")
    if phase_path is None:
        return None
    phase = read_labels(phase_path)
    labels_path = _find(folder, stem, "_labels")
    labels = None if labels_path is None else read_labels(labels_path)
    if labels is not None and labels.shape != phase.shape:
        raise InputError(f"{phase_path} and {labels_path} differ in shape")
    return phase, labels


def load_panoptic(
    folder: str | Path, stem: str, stuff: Iterable[int] | None = None, void: Iterable[int] = ()
) -> Panoptic | None:
    """The panoptic map of image ``stem`` in ``folder`` (e.g. a ground truth), or None.

    Parameters
    ----------
    folder, stem : where and which image.
    stuff, void : for a phase map (see :func:`panoptic_from_phases`); a panoptic
        JSON says itself which categories are stuff and its PNG where void is.

    ``STEM_panoptic.png`` + ``.json`` are read as they are; else ``STEM_phases``
    (+ ``STEM_labels``) become a panoptic map by :func:`panoptic_from_phases`.
    """
    png, js = panoptic_files(folder, stem)
    if png.is_file() and js.is_file():
        return read_panoptic(png, js)
    found = read_phase_instance(folder, stem)
    if found is None:
        return None
    return panoptic_from_phases(*found, stuff=stuff, void=void)
