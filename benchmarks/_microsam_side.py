"""micro-sam's side of ``bench_sam.py``; runs inside a separate micro-sam venv.

    <microsam-venv>/bin/python benchmarks/_microsam_side.py request.json result.json

The request (JSON) names the model, the images (.npy, H x W x 3 uint8) and the runs;
the result (JSON) holds the timings and mask counts, and each run's masks go to an
.npz file when the request asks for them. Only micro-sam's public API is used:
``util.get_sam_model`` / ``precompute_image_embeddings`` and the (tiled) automatic
mask generators' ``initialize`` + ``generate``.

A run's two parts are timed in the same call: "embedding" is
``precompute_image_embeddings`` (image -> embedding, micro-sam's normalisation
included), "decoder" is the generator's construction, ``initialize`` (every prompt
through the decoder, stability scores, RLE encoding) and ``generate`` (filters, box
NMS, binary masks). Whole process = embedding + decoder.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np


def load_predictor(model: dict):
    """A micro-sam / segment-anything ``SamPredictor`` holding exactly the given weights.

    ``{"model_type": "vit_b", "checkpoint": path}``: micro-sam's own loader
    (``get_sam_model`` with a plain SAM state dict). ``{"architecture": name,
    "state_dict": path, "src": path}``: an architecture micro-sam cannot build (the
    small demo model), built by the project's registry from ``src`` with
    segment-anything's classes, wrapped in segment-anything's ``SamPredictor``.
    """
    import torch

    if "model_type" in model:
        from micro_sam.util import get_sam_model

        return get_sam_model(
            model_type=model["model_type"], checkpoint_path=model["checkpoint"], device="cpu"
        )
    from segment_anything import SamPredictor

    sys.path.insert(0, model["src"])
    from napari_samphase.core.sam.registry import get_spec

    sam = get_spec(model["architecture"]).build()
    sam.load_state_dict(torch.load(model["state_dict"], map_location="cpu", weights_only=True))
    predictor = SamPredictor(sam.eval())
    # micro-sam's embedding signature (tiled embeddings) reads these
    predictor.model_type = predictor.model_name = model["architecture"]
    predictor._hash = None
    return predictor


def run_once(predictor, image: np.ndarray, run: dict, points_per_side: int):
    """One whole process: (embedding s, decoder s, list of H x W bool masks)."""
    from micro_sam import instance_segmentation as inst
    from micro_sam.util import precompute_image_embeddings

    tiled = run.get("tile_shape") is not None
    tiling = {"tile_shape": tuple(run["tile_shape"]), "halo": tuple(run["halo"])} if tiled else {}
    t0 = time.perf_counter()
    # ndim=2: an H x W x 3 array would otherwise be taken for a 3D stack of H slices
    emb = precompute_image_embeddings(predictor, image, ndim=2, verbose=False, **tiling)
    t1 = time.perf_counter()
    if tiled:
        amg = inst.TiledAutomaticMaskGenerator(predictor, points_per_side=points_per_side)
    else:
        # points_per_batch None: micro-sam's default, 64 on a CPU (as stock)
        amg = inst.AutomaticMaskGenerator(
            predictor, points_per_side=points_per_side, points_per_batch=None
        )
    amg.initialize(image, image_embeddings=emb, **tiling)
    records = amg.generate(
        pred_iou_thresh=run["pred_iou_thresh"],
        stability_score_thresh=run["stability_thresh"],
        box_nms_thresh=run["box_nms_thresh"],
        min_mask_region_area=0,
        output_mode="binary_mask",
    )
    t2 = time.perf_counter()
    # what reached box NMS (initialize keeps every mask; generate filters a copy)
    candidates = {"empty": [], "box_share": []}
    h, w = image.shape[:2]
    for data, crop_box in zip(amg.crop_list, amg.crop_boxes, strict=True):
        keep = _passes(data, crop_box, run, image.shape)
        x0, y0, x1, y1 = data["boxes"][keep].double().T  # inclusive corners
        candidates["box_share"] += ((x1 - x0 + 1) * (y1 - y0 + 1) / (h * w)).tolist()
        rles = [r for r, k in zip(data["rles"], keep.tolist(), strict=True) if k]
        candidates["empty"] += [bool(sum(r["counts"][1::2]) == 0) for r in rles]
    masks = [np.asarray(r["segmentation"], bool) for r in records]
    return t1 - t0, t2 - t1, masks, candidates


def _passes(data, crop_box, run, shape):
    """Which of a crop's masks pass the filters ``generate`` applies before its NMS."""
    import segment_anything.utils.amg as amg_utils
    import torch

    keep = torch.ones(len(data["rles"]), dtype=torch.bool)
    if run["pred_iou_thresh"] > 0:
        keep &= torch.as_tensor(data["iou_preds"] > run["pred_iou_thresh"])
    if run["stability_thresh"] > 0:
        keep &= torch.as_tensor(data["stability_score"] >= run["stability_thresh"])
    h, w = shape[:2]
    keep &= ~amg_utils.is_box_near_crop_edge(data["boxes"], crop_box, [0, 0, w, h])
    return keep


def save_masks(path: str, masks: list[np.ndarray], shape) -> None:
    stack = np.zeros((len(masks), *shape), bool)
    for i, m in enumerate(masks):
        stack[i] = m
    bits = np.packbits(stack.reshape(len(masks), -1), axis=1)
    np.savez_compressed(path, bits=bits, shape=np.array([len(masks), *shape]))


def main() -> None:
    request = json.loads(Path(sys.argv[1]).read_text())
    import torch

    torch.set_num_threads(int(request["threads"]))
    import micro_sam
    from micro_sam.util import _to_image

    try:
        predictor = load_predictor(request["model"])
    except Exception as exc:  # the main script reports it and goes on without micro-sam
        traceback.print_exc()
        fatal = f"loading the model failed: {type(exc).__name__}: {exc}".splitlines()[0]
        Path(sys.argv[2]).write_text(json.dumps({"fatal": fatal[:200]}))
        return
    out = {
        "micro_sam": micro_sam.__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        # the main script compares this with its own model's: the same weights
        "weights_checksum": float(
            sum(v.double().sum() for v in predictor.model.state_dict().values())
        ),
        "runs": [],
    }
    for run in request["runs"]:
        image = np.load(run["image"])
        res = {"name": run["name"]}
        # micro-sam stretches every image to 0..255 per channel: identical input only
        # when that is the identity (the main script hands over full-range images).
        res["same_input"] = bool(np.array_equal(_to_image(image), image))
        try:
            if run.get("warmup_points_per_side"):
                run_once(predictor, image, run, run["warmup_points_per_side"])
            emb, dec = [], []
            for _ in range(run["repeats"]):
                masks = None  # drop the previous repeat's masks first
                e, d, masks, candidates = run_once(predictor, image, run, run["points_per_side"])
                emb.append(e)
                dec.append(d)
            n = len(masks)
            empty = sum(not m.any() for m in masks)
            res.update(
                embedding_s=emb, decoder_s=dec, n_masks=n, n_empty=empty, candidates=candidates
            )
            if run.get("masks_out"):
                save_masks(run["masks_out"], masks, image.shape[:2])
        except Exception as exc:  # reported as "crashed" in the table, not fatal
            res["error"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        print(f"micro-sam {run['name']}: {res.get('error') or res['n_masks']}", flush=True)
        out["runs"].append(res)
    Path(sys.argv[2]).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
