"""Automatic mask generation: initialize once, generate with any thresholds; image
shapes of every orientation; the image-size logits are segment-anything's."""

import numpy as np
import pytest
import torch

from napari_samphase.core.errors import InputError
from napari_samphase.core.evaluation.metrics import recovered_fraction
from napari_samphase.core.image.synthetic import make_micrograph
from napari_samphase.core.sam.amg import AutomaticMaskGenerator, segment_everything

SHAPES = {"portrait": (256, 160), "landscape": (160, 256), "square": (200, 200)}


@pytest.fixture(scope="module")
def scene():
    return make_micrograph((256, 256), n_particles=25, seed=21)


def _same(a, b):
    assert np.array_equal(a.labels, b.labels)
    assert a.table.keys() == b.table.keys()
    for k in a.table:
        assert np.array_equal(a.table[k], b.table[k]), k
    assert len(a.masks) == len(b.masks)
    for (box_a, crop_a), (box_b, crop_b) in zip(a.masks, b.masks, strict=True):
        assert box_a == box_b and np.array_equal(crop_a, crop_b)


def test_generate_reuses_one_decoder_pass(demo_session, scene, monkeypatch):
    demo_session.set_image(scene.image)
    gen = AutomaticMaskGenerator(demo_session, points_per_side=12).initialize()
    calls = []
    dec = demo_session.decoder
    for name in ("transformer", "upscale"):
        real = getattr(dec, name)
        monkeypatch.setattr(dec, name, lambda *a, _f=real, **k: calls.append(1) or _f(*a, **k))
    settings = [
        {},  # the session's thresholds (the demo model's)
        {"pred_iou_thresh": 0.3, "stability_thresh": 0.6, "stability_offset": 2.0},
        {"pred_iou_thresh": 0.7, "stability_thresh": 0.9, "box_nms_thresh": 0.5, "min_area": 30},
    ]
    results = [gen.generate(**kw) for kw in settings]
    assert calls == []  # generate never ran the decoder
    monkeypatch.undo()
    _same(results[1], gen.generate(**settings[1]))  # again: the scores were kept
    counts = set()
    for kw, got in zip(settings, results, strict=True):
        fresh = segment_everything(demo_session, points_per_side=12, **kw)
        _same(got, fresh)
        counts.add(got.n_masks)
    assert len(counts) == 3  # the thresholds really changed the result


def test_generate_checks_its_inputs(demo_session, scene, micrograph):
    demo_session.set_image(scene.image)
    gen = AutomaticMaskGenerator(demo_session, points_per_side=8)
    with pytest.raises(InputError, match="initialize"):
        gen.generate()
    gen.initialize(min_pred_iou=0.5)
    assert gen.generate(pred_iou_thresh=0.6).n_masks > 0
    with pytest.raises(InputError, match="min_pred_iou"):
        gen.generate(pred_iou_thresh=0.4)
    with pytest.raises(InputError, match="stability_offset"):
        gen.generate(stability_offset=5.0)
    demo_session.set_image(micrograph.image)
    with pytest.raises(InputError, match="image changed"):
        gen.generate()
    # a cancelled decoder pass leaves nothing half-made to generate from
    from napari_samphase.core.progress import Cancelled

    def cancel(done, total, message):
        if done > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        gen.initialize(progress=cancel)
    with pytest.raises(InputError, match="initialize"):
        gen.generate()


@pytest.mark.parametrize("orientation", SHAPES)
def test_every_orientation_agrees_with_stock(demo_session, orientation):
    from segment_anything import SamAutomaticMaskGenerator

    image = make_micrograph(SHAPES[orientation], n_particles=12, seed=5).image
    stock = SamAutomaticMaskGenerator(
        demo_session.sam, points_per_side=12, pred_iou_thresh=0.5, stability_score_thresh=0.8
    ).generate(np.repeat(image[..., None], 3, 2))
    seg = demo_session.segment_everything(image, points_per_side=12)
    assert seg.labels.shape == image.shape
    assert len(stock) >= 5
    assert recovered_fraction([m["segmentation"] for m in stock], seg.dense_masks()) >= 0.95
    assert abs(len(seg.masks) - len(stock)) <= max(1, 0.1 * len(stock))


@pytest.mark.parametrize("orientation", ["portrait", "landscape"])
def test_masks_are_stock_postprocessed_outputs(demo_session, orientation):
    """Each mask equals, pixel for pixel, one of its prompt's three outputs upscaled by
    segment-anything's own ``postprocess_masks`` (up to logits within 1e-4 of the
    threshold, where float rounding may decide)."""
    s = demo_session
    image = make_micrograph(SHAPES[orientation], n_particles=12, seed=5).image
    seg = s.segment_everything(image, points_per_side=8, pred_iou_thresh=0.3, stability_thresh=0.5)
    assert seg.n_masks >= 5
    points = np.c_[seg.table["point_row"], seg.table["point_col"]] - 0.5
    coords = torch.as_tensor(s.to_model_coords(points)[:, None], dtype=torch.float32)
    iou, hyper, keys = s.decoder.transformer(
        s.decoder.sparse(coords, torch.ones((len(points), 1), dtype=torch.int64))
    )
    low = s.decoder.upscale(keys, hyper[:, 1:])
    with torch.inference_mode():
        stock = s.sam.postprocess_masks(low, s.input_size, s.original_size).numpy()
    thr = s.sam.mask_threshold
    for k, label in enumerate(seg.table["id"]):
        mask = seg.labels == label
        # painting hides a mask's pixels under masks of higher predicted IoU
        hidden = (seg.labels != 0) & ~mask
        wrong = [((out > thr) != mask) & ~hidden for out in stock[k]]
        best = int(np.argmin([w.sum() for w in wrong]))
        assert (np.abs(stock[k, best] - thr)[wrong[best]] < 1e-4).all()


def test_stability_helper_is_segment_anythings():
    from segment_anything.utils.amg import calculate_stability_score

    from napari_samphase.core.sam.amg import stability_score

    logits = torch.randn(6, 40, 50) * 3
    ours = stability_score(logits, 0.0, 1.0)
    assert torch.allclose(ours.float(), calculate_stability_score(logits, 0.0, 1.0))
    assert stability_score(torch.full((1, 4, 4), -9.0), 0.0, 1.0).item() == 0.0


def test_skip_covered_decodes_fewer_prompts(demo_session, scene, monkeypatch):
    from napari_samphase.core.evaluation.metrics import instance_metrics

    demo_session.set_image(scene.image)
    seen = []
    real = demo_session.decoder.transformer
    monkeypatch.setattr(
        demo_session.decoder, "transformer", lambda sp: seen.append(len(sp)) or real(sp)
    )
    full = demo_session.segment_everything(points_per_side=16)
    n_full, seen[:] = sum(seen), []
    skipped = demo_session.segment_everything(points_per_side=16, skip_covered=True)
    assert n_full == 256 and sum(seen) < 0.8 * n_full
    recall = [instance_metrics(s.labels, scene.instances)["recall50"] for s in (full, skipped)]
    assert recall[1] >= recall[0] - 0.1


def test_thresholds_travel_with_a_custom_checkpoint(demo_session, scene, tmp_path):
    """A checkpoint saved with its own thresholds gives them to segment everything,
    not those registered for its architecture's name."""
    from napari_samphase.core.sam.loading import save_checkpoint
    from napari_samphase.core.sam.registry import MODELS, Thresholds
    from napari_samphase.core.sam.session import SamSession

    tuned = Thresholds(pred_iou_thresh=0.75, stability_thresh=0.92)
    path = save_checkpoint(demo_session.sam, tmp_path / "tuned.pth", "demo-synthetic", tuned)
    s = SamSession.from_name("demo-synthetic", checkpoint=path, device="cpu")
    assert s.thresholds == tuned != MODELS["demo-synthetic"].thresholds
    s.set_image(scene.image)
    got = s.segment_everything(points_per_side=12)
    _same(
        got, s.segment_everything(points_per_side=12, pred_iou_thresh=0.75, stability_thresh=0.92)
    )
    registered = s.segment_everything(points_per_side=12, pred_iou_thresh=0.5, stability_thresh=0.8)
    assert got.n_masks < registered.n_masks
    assert (got.table["predicted_iou"] > 0.75).all() and (got.table["stability"] >= 0.92).all()
