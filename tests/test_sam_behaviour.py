"""Behaviour of the SAM path with the bundled demo-synthetic model (trained on
synthetic micrographs only): clicks return particles, segment everything finds them,
and the fast generator agrees with segment-anything's own generator."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_samphase.core.evaluation.metrics import instance_metrics, recovered_fraction
from napari_samphase.core.image.synthetic import make_micrograph


@pytest.fixture(scope="module")
def scene():
    # The model's native input size (256): the image is not resampled.
    return make_micrograph((256, 256), n_particles=25, seed=21)


def _interior(target):
    dist = ndi.distance_transform_edt(target)
    return np.unravel_index(np.argmax(dist), dist.shape)


def test_a_click_inside_a_particle_returns_that_particle(demo_session, scene):
    demo_session.set_image(scene.image)
    ids = np.unique(scene.instances)[1:]
    ious = []
    for i in ids:
        target = scene.instances == i
        if target.sum() < 150:  # a click on a speck is ambiguous even for people
            continue
        res = demo_session.predict([_interior(target)])
        ious.append((res.mask & target).sum() / (res.mask | target).sum())
    ious = np.array(ious)
    assert len(ious) >= 20
    assert np.median(ious) >= 0.8 and ious.mean() >= 0.8
    assert np.mean(ious >= 0.5) >= 0.9  # the clicked particle, not a neighbour or the matrix


def test_a_negative_click_removes_a_wrongly_included_region(demo_session, scene):
    demo_session.set_image(scene.image)
    target = scene.instances == np.unique(scene.instances)[1]
    r, c = _interior(target)
    # negative point in the matrix far from the particle: the mask must stay the particle
    matrix = np.argwhere(ndi.binary_erosion(scene.instances == 0, iterations=8))
    far = matrix[np.argmax(np.hypot(*(matrix - [r, c]).T))]
    res = demo_session.predict([[r, c], far], [1, 0])
    assert not res.mask[far[0], far[1]]
    assert res.mask[r, c]


def test_segment_everything_recovers_most_particles(demo_session, scene):
    demo_session.set_image(scene.image)
    seg = demo_session.segment_everything(points_per_side=32)
    assert seg.labels.dtype == np.uint32 and seg.labels.shape == scene.image.shape
    m = instance_metrics(seg.labels, scene.instances)
    assert m["recall50"] >= 0.8
    # records describe the label image
    t = seg.table
    assert (np.bincount(seg.labels.ravel())[t["id"]] == t["area"]).all()
    # the thresholds registered for the demo model were applied
    assert (t["predicted_iou"] > 0.5).all() and (t["stability"] >= 0.8).all()
    r0, c0, r1, c1 = t["bbox_row0"][0], t["bbox_col0"][0], t["bbox_row1"][0], t["bbox_col1"][0]
    rows, cols = np.nonzero(seg.labels == t["id"][0])
    assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (r0, c0, r1, c1)


@pytest.mark.parametrize("pps", [16, 32])
def test_fast_generator_agrees_with_stock(demo_session, scene, pps):
    from segment_anything import SamAutomaticMaskGenerator

    rgb = np.repeat(scene.image[..., None], 3, 2)
    stock = SamAutomaticMaskGenerator(
        demo_session.sam, points_per_side=pps, pred_iou_thresh=0.5, stability_score_thresh=0.8
    ).generate(rgb)
    demo_session.set_image(scene.image)
    seg = demo_session.segment_everything(points_per_side=pps)
    assert len(stock) > 10
    # compare mask sets as both generators return them (before overlaps are resolved)
    assert recovered_fraction([m["segmentation"] for m in stock], seg.dense_masks()) >= 0.95
    assert abs(len(seg.masks) - len(stock)) <= 0.1 * len(stock)


def test_progress_and_cancel_in_segment_everything(demo_session, scene):
    from napari_samphase.core.progress import Cancelled, CancelToken, with_cancel

    demo_session.set_image(scene.image)
    seen = []
    token = CancelToken()

    def progress(done, total, msg):
        seen.append((done, total))
        if len(seen) == 3:
            token.cancel()

    with pytest.raises(Cancelled):
        demo_session.segment_everything(points_per_side=32, progress=with_cancel(progress, token))
    assert seen[0] == (0, 1024)
    assert len(seen) == 3  # stopped at the next batch


@pytest.mark.gpu
def test_cuda_bf16_path_matches_cpu(scene):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    from napari_samphase.core.sam.session import SamSession

    cpu = SamSession.from_name("demo-synthetic", device="cpu")
    gpu = SamSession.from_name("demo-synthetic", device="cuda")
    target = scene.instances == np.unique(scene.instances)[1]
    a = cpu.segment_everything(scene.image).n_masks
    b = gpu.segment_everything(scene.image).n_masks
    assert abs(a - b) <= max(2, 0.1 * a)
    pa = cpu.predict([_interior(target)]).mask
    pb = gpu.predict([_interior(target)]).mask
    assert (pa & pb).sum() / (pa | pb).sum() > 0.9
