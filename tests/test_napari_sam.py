"""The SAM path of the widget in a real viewer: clicks -> preview -> commit, segment
everything in a worker with cancel, and the screenshot the docs use (written into
docs/images only with SAMPHASE_DOCS_SCREENSHOTS=1: tests never rewrite tracked files)."""

import numpy as np
import pytest
from scipy import ndimage as ndi

pytest.importorskip("napari")
from tests._gui import DOCS_IMAGES, DOCS_SCREENSHOTS, keep_docs_screenshots

pytestmark = pytest.mark.gui


SHOTS = ("widget.png", "widget-controls.png")


docs_untouched = keep_docs_screenshots(*SHOTS)


def _open(make_napari_viewer, qtbot, data, **meta):
    """A shown viewer with the docked widget, ``data`` as an image layer and the demo
    model loaded and embedded."""
    from napari_samphase._qt.samphase_widget import SamphaseWidget

    viewer = make_napari_viewer(show=True)
    w = SamphaseWidget(viewer)
    viewer.window.add_dock_widget(w, name="SAM phase mapper")
    viewer.add_image(data, **meta)
    w.model_combo.setCurrentText("demo-synthetic")
    w.device_combo.setCurrentText("cpu")
    w.run_load_and_embed()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=120_000)
    assert "embedding ready" in w.info.text()
    return viewer, w


@pytest.fixture()
def loaded(make_napari_viewer, qtbot):
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase.core.image.synthetic import sample_micrograph

    data, meta, _ = synthetic_micrograph()[0]
    viewer, w = _open(make_napari_viewer, qtbot, data, **meta)
    return viewer, w, sample_micrograph()


def _centre(instances, pid):
    """The pixel deepest inside instance ``pid``."""
    dist = ndi.distance_transform_edt(instances == pid)
    return np.unravel_index(np.argmax(dist), dist.shape)


def _iou(a, b):
    return (a & b).sum() / (a | b).sum()


def test_clicks_preview_and_commit(loaded):

    viewer, w, truth = loaded
    w.set_mode("segment")
    pid = np.unique(truth.instances)[5]
    target = truth.instances == pid
    r, c = _centre(truth.instances, pid)
    w.click(r, c)
    preview = np.asarray(w.mapper.layer("preview").data) > 0
    assert _iou(preview, target) >= 0.7
    assert len(w.mapper.layer("prompts").data) == 1
    w.click(5, 5, negative=True)  # a negative point in a corner
    assert list(w.mapper.layer("prompts").features["positive"]) == [True, False]
    w.commit()
    masks = np.asarray(w.mapper.layer("masks").data)
    assert masks.max() == 1 and ((masks == 1) & target).sum() > 0.6 * target.sum()
    assert len(w.mapper.layer("prompts").data) == 0
    assert list(w.mapper.layer("masks").features["id"]) == [1]


def test_mouse_clicks_on_the_canvas_prompt_sam(loaded, click_canvas):
    """Real mouse events: a click adds a positive point and a preview of that particle,
    a Shift+click a negative point; in navigate mode a click does nothing."""

    viewer, w, truth = loaded
    viewer.reset_view()
    pid = np.unique(truth.instances)[5]
    target = truth.instances == pid
    r, c = _centre(truth.instances, pid)
    w.set_mode("navigate")
    click_canvas(viewer, r, c)
    assert w.mapper.layer("prompts") is None or len(w.mapper.layer("prompts").data) == 0
    w.set_mode("segment")
    click_canvas(viewer, r, c)
    prompts = w.mapper.layer("prompts")
    assert len(prompts.data) == 1 and np.abs(prompts.data[0] - (r, c)).max() <= 1.5
    preview = np.asarray(w.mapper.layer("preview").data) > 0
    assert _iou(preview, target) >= 0.7
    click_canvas(viewer, 5, 5, shift=True)
    assert list(prompts.features["positive"]) == [True, False]


def test_segment_everything_cancel_then_run_and_screenshot(loaded, qtbot, tmp_path):
    from napari_samphase.core.evaluation.metrics import instance_metrics, semantic_metrics

    viewer, w, truth = loaded
    w.pps.setValue(32)
    w.run_segment_everything()
    w.runner.cancel()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=120_000)
    assert "cancelled" in w.info.text()
    assert w.mapper.layer("masks") is None or w.mapper.layer("masks").data.max() == 0

    w.pps.setValue(24)
    w.run_segment_everything()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=300_000)
    masks = w.mapper.layer("masks")
    # the sample's particles come back as masks (cleaned: no rings, parts or halos)
    assert instance_metrics(np.asarray(masks.data), truth.instances)["recall50"] >= 0.8
    assert {"predicted_iou", "stability", "point_row"} <= set(masks.features.columns)

    w.k_spin.setValue(4)
    w.run_find_phases()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    phases = np.asarray(w.mapper.layer("phases").data)
    assert semantic_metrics(phases, truth.phases)["miou"] >= 0.85  # matrix + 3 phases
    w.set_mode("same phase")
    pid = np.unique(truth.instances)[3]
    rows, cols = np.nonzero(ndi.binary_erosion(truth.instances == pid, iterations=3))
    hit = w.click(rows[len(rows) // 2], cols[len(cols) // 2])
    assert hit is not None and not hit.is_background
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # the "cancelled" toast from above does not belong in the docs
    viewer.window.resize(1400, 900)
    qtbot.wait(200)
    w.show_measurements()  # docked with the phases: now its share of the new height
    w.scroll.ensureWidgetVisible(w.table)  # the phase table in the image's units
    qtbot.wait(200)
    viewer.reset_view()
    qtbot.wait(200)
    out = DOCS_IMAGES if DOCS_SCREENSHOTS else tmp_path
    shot = viewer.screenshot(out / "widget.png", canvas_only=False)
    assert shot.shape[0] > 400 and shot.std() > 5
    assert (out / "widget.png").is_file()
    # every control of the widget at once (it scrolls in the dock)
    assert w.scroll.widget().grab().save(str(out / "widget-controls.png"))
    from napari_samphase.core.image.io import read_array

    assert read_array(out / "widget-controls.png").shape[0] > 600


def test_clicks_use_the_embedding_of_the_current_image(loaded, qtbot):
    """Another image chosen in the combo, or the image layer's data replaced: the next
    click re-embeds (in a worker from the widget, at once from PhaseMapper) and the
    preview is the clicked particle of the image on screen."""

    viewer, w, truth = loaded
    flipped_truth = np.fliplr(truth.instances)
    viewer.add_image(np.fliplr(truth.image), name="flipped")
    w.image_combo.setCurrentText("flipped")
    w.set_mode("segment")
    pid = np.unique(truth.instances)[5]
    r, c = _centre(flipped_truth, pid)
    assert truth.instances[r, c] != pid  # the old image's embedding would miss it
    w.click(r, c)
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    assert len(w.mapper.layer("prompts").data) == 1
    preview = np.asarray(w.mapper.layer("preview").data) > 0
    assert _iou(preview, flipped_truth == pid) >= 0.7

    # the same layer, new pixels: PhaseMapper re-embeds before predicting
    w.clear_prompts()
    flipped_up = np.flipud(truth.image)
    viewer.layers["flipped"].data = flipped_up
    assert not w.mapper.embedding_is_current()
    r, c = _centre(np.flipud(truth.instances), pid)
    w.mapper.add_prompt(r, c)
    preview = np.asarray(w.mapper.layer("preview").data) > 0
    assert _iou(preview, np.flipud(truth.instances) == pid) >= 0.7
    assert w.mapper.embedding_is_current()


def test_embedding_features_use_the_current_image(make_napari_viewer, demo_session):
    """Phases with the 'full' feature set read the embedding of the image now in the
    layer, not of the one embedded before."""
    from napari_samphase._napari.phase_mapper import PhaseMapper
    from napari_samphase.core.image.labels import Segmentation, table_from_labels
    from napari_samphase.core.image.synthetic import make_micrograph
    from napari_samphase.core.sam.session import SamSession

    viewer = make_napari_viewer()
    first = make_micrograph((96, 128), n_particles=8, seed=1)
    second = make_micrograph((96, 128), n_particles=8, seed=2)
    mapper = PhaseMapper(viewer)
    mapper.image_layer = viewer.add_image(first.image)
    mapper.session = SamSession(demo_session.sam, "demo-synthetic")
    mapper.embed()
    mapper.image_layer.data = second.image
    labels = second.instances
    mapper.apply_segmentation(Segmentation(labels, table_from_labels(labels)))
    mapper.compute_phases(k=2, features="full")
    reference = SamSession(demo_session.sam, "demo-synthetic")
    reference.set_image(second.image)
    assert np.allclose(mapper.session.embedding_array(), reference.embedding_array(), atol=1e-5)


def test_commit_can_be_undone(loaded):

    viewer, w, truth = loaded
    w.set_mode("segment")
    ids = np.unique(truth.instances)[1:]
    w.click(*_centre(truth.instances, ids[5]))
    w.commit()
    masks = w.mapper.layer("masks")
    after_first = np.asarray(masks.data).copy()
    w.click(*_centre(truth.instances, ids[9]))
    w.commit()
    assert np.asarray(masks.data).max() == 2
    masks.undo()  # Ctrl+Z
    assert np.array_equal(np.asarray(masks.data), after_first)
    masks.undo()
    assert not np.asarray(masks.data).any()


def test_prompts_and_preview_sit_on_a_scaled_image(make_napari_viewer, qtbot, click_canvas):
    """An image with a pixel size and an offset: a real click puts the prompt on the
    clicked pixel, and the preview of that particle is drawn over it."""
    from napari_samphase.core.image.synthetic import sample_micrograph

    truth = sample_micrograph()
    meta = {"scale": (0.5, 0.25), "translate": (10, 20), "units": ("um", "um")}
    viewer, w = _open(make_napari_viewer, qtbot, truth.image, name="scaled", **meta)
    image = viewer.layers["scaled"]
    viewer.reset_view()
    w.set_mode("segment")
    pid = np.unique(truth.instances)[5]
    r, c = _centre(truth.instances, pid)
    click_canvas(viewer, r, c, layer=image)
    prompts, preview = w.mapper.layer("prompts"), w.mapper.layer("preview")
    for layer in (prompts, preview):
        assert np.allclose(layer.scale, image.scale) and np.allclose(
            layer.translate, image.translate
        )
        assert tuple(layer.units) == tuple(image.units)
    assert len(prompts.data) == 1 and np.abs(prompts.data[0] - (r, c)).max() <= 1.5
    assert _iou(np.asarray(preview.data) > 0, truth.instances == pid) >= 0.7
    assert preview.get_value(image.data_to_world((r, c)), world=True) == 1


def test_thresholds_refilter_the_last_run_without_the_decoder(loaded, qtbot, monkeypatch):
    """Segment everything decodes once; "Apply thresholds" re-filters those outputs
    (no decoder pass) and equals a fresh run with the same thresholds."""
    from napari_samphase.core.image.labels import clean_segmentation
    from napari_samphase.core.sam.amg import segment_everything

    viewer, w, truth = loaded
    w.pps.setValue(16)
    w.run_segment_everything()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=300_000)
    n_default = len(np.unique(w.mapper.layer("masks").data)) - 1
    session = w.mapper.session
    calls = []
    monkeypatch.setattr(session.decoder, "transformer", lambda *a, **k: calls.append(1))
    w.iou_thresh.setValue(0.7)
    w.stab_thresh.setValue(0.9)
    w.run_apply_thresholds()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    strict = np.asarray(w.mapper.layer("masks").data)
    assert calls == [], "re-filtering must not run the decoder"
    assert 0 < len(np.unique(strict)) - 1 < n_default
    monkeypatch.undo()
    fresh = segment_everything(session, 16, 0.7, 0.9, min_area=w.min_area.value())
    expected = clean_segmentation(fresh, truth.image, min_area=w.min_area.value())
    assert np.array_equal(strict, expected.labels)
    w.mapper.layer("masks").undo()  # one Ctrl+Z brings the default-threshold masks back
    assert len(np.unique(w.mapper.layer("masks").data)) - 1 == n_default


def test_box_prompts_decode_as_segment_anythings_predictor(demo_session):
    """A box (alone or with a click) is encoded as SamPredictor encodes it: the same
    mask and score; it changes the mask a click alone gives; empty boxes are refused."""
    from segment_anything import SamPredictor

    from napari_samphase.core.errors import InputError
    from napari_samphase.core.image.convert import to_rgb_uint8
    from napari_samphase.core.image.synthetic import sample_micrograph
    from napari_samphase.core.sam.session import SamSession

    truth = sample_micrograph()
    session = SamSession(demo_session.sam, "demo-synthetic", precision="fp32")
    session.set_image(truth.image)
    predictor = SamPredictor(demo_session.sam)
    predictor.set_image(to_rgb_uint8(truth.image))
    for pid in np.unique(truth.instances)[[3, 9]]:
        rows, cols = np.nonzero(truth.instances == pid)
        box = np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        r, c = _centre(truth.instances, pid)
        alone = session.predict(box=box)
        masks, scores, _ = predictor.predict(box=box, multimask_output=False)
        assert np.array_equal(alone.mask, masks[0]) and np.isclose(alone.score, scores[0])
        both = session.predict([[r, c]], [1], box=box)
        # the session puts a click on its pixel's centre (+0.5), as it does for points
        masks, scores, _ = predictor.predict(
            np.array([[c + 0.5, r + 0.5]]), np.array([1]), box=box, multimask_output=False
        )
        assert np.array_equal(both.mask, masks[0]) and both.index == 0
        assert not np.array_equal(both.mask, session.predict([[r, c]]).mask)
    for bad in ([5, 5, 5, 9], [300, 300, 400, 400], [1, 2, 3]):
        with pytest.raises(InputError):
            session.predict(box=bad)
    with pytest.raises(InputError, match="point or a box"):
        session.predict()
