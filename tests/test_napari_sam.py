"""The SAM path of the widget in a real viewer: clicks -> preview -> commit, segment
everything in a worker with cancel, and the screenshot the docs use."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage as ndi

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


@pytest.fixture()
def loaded(make_napari_viewer, qtbot):
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.samphase_widget import SamphaseWidget
    from napari_samphase.core.image.synthetic import sample_micrograph

    viewer = make_napari_viewer(show=True)
    w = SamphaseWidget(viewer)
    viewer.window.add_dock_widget(w, name="SAM phase mapper")
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    w.model_combo.setCurrentText("demo-synthetic")
    w.device_combo.setCurrentText("cpu")
    w.load_and_embed()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=120_000)
    assert "embedding ready" in w.info.text()
    return viewer, w, sample_micrograph()


def test_clicks_preview_and_commit(loaded):
    from napari_samphase._napari.phase_mapper import MASKS, PREVIEW, PROMPTS

    viewer, w, truth = loaded
    w.set_mode("segment")
    pid = np.unique(truth.instances)[5]
    target = truth.instances == pid
    dist = ndi.distance_transform_edt(target)
    r, c = np.unravel_index(np.argmax(dist), dist.shape)
    w.click(r, c)
    preview = np.asarray(viewer.layers[PREVIEW].data) > 0
    assert (preview & target).sum() / (preview | target).sum() >= 0.7
    assert len(viewer.layers[PROMPTS].data) == 1
    w.click(5, 5, negative=True)  # a negative point in a corner
    assert list(viewer.layers[PROMPTS].features["positive"]) == [True, False]
    w.commit()
    masks = np.asarray(viewer.layers[MASKS].data)
    assert masks.max() == 1 and ((masks == 1) & target).sum() > 0.6 * target.sum()
    assert len(viewer.layers[PROMPTS].data) == 0
    assert list(viewer.layers[MASKS].features["id"]) == [1]


def test_mouse_clicks_on_the_canvas_prompt_sam(loaded, click_canvas):
    """Real mouse events: a click adds a positive point and a preview of that particle,
    a Shift+click a negative point; in navigate mode a click does nothing."""
    from napari_samphase._napari.phase_mapper import PREVIEW, PROMPTS

    viewer, w, truth = loaded
    viewer.reset_view()
    pid = np.unique(truth.instances)[5]
    target = truth.instances == pid
    dist = ndi.distance_transform_edt(target)
    r, c = np.unravel_index(np.argmax(dist), dist.shape)
    w.set_mode("navigate")
    click_canvas(viewer, r, c)
    assert PROMPTS not in viewer.layers or len(viewer.layers[PROMPTS].data) == 0
    w.set_mode("segment")
    click_canvas(viewer, r, c)
    prompts = viewer.layers[PROMPTS]
    assert len(prompts.data) == 1 and np.abs(prompts.data[0] - (r, c)).max() <= 1.5
    preview = np.asarray(viewer.layers[PREVIEW].data) > 0
    assert (preview & target).sum() / (preview | target).sum() >= 0.7
    click_canvas(viewer, 5, 5, shift=True)
    assert list(prompts.features["positive"]) == [True, False]


def test_segment_everything_cancel_then_run_and_screenshot(loaded, qtbot):
    from napari_samphase._napari.phase_mapper import MASKS, PHASES

    viewer, w, truth = loaded
    w.pps.setValue(32)
    w.segment_everything()
    w.runner.cancel()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=120_000)
    assert "cancelled" in w.info.text()
    assert MASKS not in viewer.layers or viewer.layers[MASKS].data.max() == 0

    w.pps.setValue(24)
    w.segment_everything()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=300_000)
    masks = viewer.layers[MASKS]
    assert masks.data.max() > 30
    assert {"predicted_iou", "stability", "point_row"} <= set(masks.features.columns)

    w.k_spin.setValue(4)
    w.find_phases()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    assert viewer.layers[PHASES].data.max() >= 2
    w.set_mode("same phase")
    pid = np.unique(truth.instances)[3]
    r, c = np.argwhere(truth.instances == pid)[0]
    rows, cols = np.nonzero(ndi.binary_erosion(truth.instances == pid, iterations=3))
    hit = w.click(rows[len(rows) // 2], cols[len(cols) // 2])
    assert hit is not None and not hit.is_background
    DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()  # the "cancelled" toast from above does not belong in the docs
    viewer.window.resize(1400, 900)
    qtbot.wait(200)
    viewer.reset_view()
    qtbot.wait(200)
    shot = viewer.screenshot(DOCS_IMAGES / "widget.png", canvas_only=False)
    assert shot.shape[0] > 400 and shot.std() > 5
