"""The widget's Train section in a real viewer: fine-tune the demo model on layers, watch
the loss plot, get the checkpoint selected and loaded; Cancel keeps the best epoch. The
docs screenshot is written into docs/images only with SAMPHASE_DOCS_SCREENSHOTS=1."""

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
from qtpy.QtCore import Qt  # noqa: E402

from tests._gui import DOCS_IMAGES, DOCS_SCREENSHOTS, keep_docs_screenshots, wait_idle

pytestmark = pytest.mark.gui

SHOT = "train-section.png"


docs_untouched = keep_docs_screenshots(SHOT)


def _micrograph(seed):
    from napari_samphase.core.image.synthetic import make_micrograph

    return make_micrograph((96, 96), n_particles=8, seed=seed)


@pytest.fixture()
def widget(make_napari_viewer, qtbot):
    """Two generated images with their masks layers, the demo model chosen on the CPU."""
    from napari_samphase._qt.samphase_widget import SamphaseWidget

    viewer = make_napari_viewer()
    w = SamphaseWidget(viewer)
    qtbot.addWidget(w)
    for i in range(2):
        m = _micrograph(i)
        viewer.add_image(m.image, name=f"m{i}")
        viewer.add_labels(m.instances, name=f"m{i} masks")
    w.image_combo.setCurrentText("m0")
    w.model_combo.setCurrentText("demo-synthetic")
    w.device_combo.setCurrentText("cpu")
    w.train.val_fraction.setValue(0.5)
    return viewer, w


def test_images_with_masks_are_listed(widget):
    viewer, w = widget
    assert w.train.chosen() == ["m0", "m1"]
    viewer.add_image(np.zeros((50, 60), np.uint8), name="other")
    viewer.add_labels(np.zeros((40, 60), np.int32), name="other masks")  # not its size
    viewer.add_image(np.zeros((3, 20, 20), np.uint8), name="stack")
    viewer.add_labels(np.zeros((3, 20, 20), np.int32), name="stack masks")
    assert w.train.chosen() == ["m0", "m1"]
    w.train.images.item(1).setCheckState(Qt.Unchecked)  # untick m1: it stays unticked on a refresh
    viewer.layers["m0 masks"].name = "m0 annotations"  # no longer pairs up
    assert [w.train.images.item(i).data(Qt.UserRole) for i in range(w.train.images.count())] == [
        "m1"
    ]
    assert w.train.chosen() == []
    # the widget's own masks layer of the current image pairs up again
    viewer.add_labels(np.zeros((96, 96), np.int32), name=w.mapper.layer_name("masks"))
    assert w.mapper.training_sources() == {"m0": "m0 masks", "m1": "m1 masks"}
    assert w.train.chosen() == ["m0"]


def test_weight_free_model_or_no_image_is_refused(widget):
    viewer, w = widget
    w.model_combo.setCurrentText("superpixels (no weights)")
    assert w.train.run_train() is None
    assert "SAM model" in w.info.text()
    w.model_combo.setCurrentText("demo-synthetic")
    for i in range(w.train.images.count()):
        w.train.images.item(i).setCheckState(Qt.Unchecked)
    assert w.train.run_train() is None
    assert "no image to train on" in w.info.text()
    assert not w.runner.busy


def test_train_then_the_checkpoint_is_selected_loaded_and_embedded(widget, qtbot, tmp_path):
    viewer, w = widget
    ft = tmp_path / "ft.pth"
    w.train.epochs.setValue(1)
    w.train.output.setText(str(ft))
    w.train.run_train()
    assert w.runner.busy and not w.train.train_btn.isEnabled()
    wait_idle(qtbot, w)
    assert ft.is_file(), w.info.text()
    assert w.checkpoint.text() == str(ft)
    assert w.model_combo.currentText() == "demo-synthetic"
    session = w.mapper.session
    assert session.checkpoint_id.startswith(f"{ft}#")
    assert w.mapper.session_key == w.choice().key  # the next action reuses it
    assert w.mapper.embedding_is_current()
    assert w.train.plot.epochs == [1]
    assert w.train.plot.series["val"][0] is not None  # m1 or m0 held out
    assert "best epoch 1 of 1" in w.info.text() and "val IoU" in w.info.text()
    assert w.train.train_btn.isEnabled()


def test_a_second_run_trains_from_the_first_into_a_new_file(widget, qtbot, cache_dir):
    """Train twice with the default output: the second run starts from the first
    run's checkpoint (now selected) and must not overwrite it, and the model in use
    is the second run's."""
    viewer, w = widget
    w.train.epochs.setValue(1)
    w.train.run_train()
    wait_idle(qtbot, w)
    first = Path(w.checkpoint.text())
    assert first.is_file() and w.train.output.text() == ""
    first_bytes = first.read_bytes()
    w.train.run_train()
    wait_idle(qtbot, w)
    second = Path(w.checkpoint.text())
    assert second.is_file() and second != first, w.info.text()
    assert first.read_bytes() == first_bytes
    assert w.mapper.session.checkpoint_id.startswith(f"{second}#")


def test_output_may_not_overwrite_the_base_checkpoint(widget, qtbot, tmp_path):
    viewer, w = widget
    ft = tmp_path / "ft.pth"
    w.train.epochs.setValue(1)
    w.train.output.setText(str(ft))
    w.train.run_train()
    wait_idle(qtbot, w)
    before = ft.read_bytes()
    assert w.checkpoint.text() == str(ft)
    w.train.run_train()  # output == the selected base: refused
    wait_idle(qtbot, w)
    assert ft.read_bytes() == before
    assert "overwrite" in w.info.text()


def test_a_rewritten_checkpoint_is_loaded_again(widget, qtbot, tmp_path):
    """The model is reused while its checkpoint file is the same; a file rewritten at
    the same path (a resumed or repeated run) is a different model."""
    from napari_samphase._napari.phase_mapper import ModelChoice

    a = ModelChoice("demo-synthetic", str(tmp_path / "x.pth"), "cpu")
    (tmp_path / "x.pth").write_bytes(b"1")
    key = a.key
    assert a.key == key
    os.utime(tmp_path / "x.pth", ns=(1, 1))
    assert a.key != key


def test_cancel_keeps_the_best_epoch(widget, qtbot, tmp_path):
    viewer, w = widget
    ft = tmp_path / "ft.pth"
    w.train.epochs.setValue(20)
    w.train.output.setText(str(ft))
    w.train.run_train()
    qtbot.waitUntil(lambda: len(w.train.plot.epochs) >= 1, timeout=120_000)
    w.train.cancel_btn.click()
    wait_idle(qtbot, w)
    assert ft.is_file()
    assert 1 <= len(w.train.plot.epochs) < 20
    assert w.info.text().startswith("cancelled; kept best epoch")
    assert w.checkpoint.text() == str(ft)
    assert w.mapper.session is None  # nothing more was started after Cancel


def test_cancel_before_the_first_epoch_writes_nothing(widget, qtbot, cache_dir):
    """No output chosen: a new file under the model cache, named after the base model;
    cancelled before an epoch finished, it is never written."""
    viewer, w = widget
    w.train.run_train()
    w.runner.cancel()
    out = w.train.last_output
    assert out.parent == cache_dir / "fine-tuned" and out.name.startswith("demo-synthetic-ft-")
    wait_idle(qtbot, w)
    assert "cancelled" in w.info.text()
    assert not out.exists() and w.checkpoint.text() == ""
    assert w.train.plot.epochs == []


def test_screenshot_of_the_train_section(widget, qtbot, tmp_path, monkeypatch):
    """The section after a short run, docked in napari (its theme): the loss plot shows
    a line per series."""
    viewer, w = widget
    monkeypatch.chdir(tmp_path)  # a relative output path: the screenshot shows no tmp dir
    viewer.window.add_dock_widget(w, name="SAM phase mapper")
    epochs = 4
    if DOCS_SCREENSHOTS:  # the docs get a longer run over more images: a smoother curve
        epochs = 10
        for i in range(2, 6):
            m = _micrograph(i)
            viewer.add_image(m.image, name=f"m{i}")
            viewer.add_labels(m.instances, name=f"m{i} masks")
        w.image_combo.setCurrentText("m0")
        w.train.val_fraction.setValue(0.34)
    w.train.epochs.setValue(epochs)
    w.train.output.setText("ft-demo.pth")
    w.train.run_train()
    wait_idle(qtbot, w)
    assert (tmp_path / "ft-demo.pth").is_file()
    assert w.train.plot.epochs[:4] == [1, 2, 3, 4]  # patience 5: no early stop before
    qtbot.wait(100)
    out = DOCS_IMAGES if DOCS_SCREENSHOTS else tmp_path
    assert w.train.grab().save(str(out / SHOT))
    from napari_samphase.core.image.io import read_array

    pixels = read_array(out / SHOT)
    assert pixels.shape[0] > 200 and pixels.std() > 5


def test_the_widget_masks_pair_only_with_the_image_they_were_made_on(widget):
    """Masks made on m0 in the widget's own layer must not become m1's training labels
    when the user switches to m1 (the same size) without renaming the layer."""
    from napari_samphase.core.image.labels import Segmentation, table_from_labels

    viewer, w = widget
    viewer.layers["m0 masks"].name = "m0 drawn"
    labels = np.asarray(viewer.layers["m0 drawn"].data)
    w.mapper.apply_segmentation(Segmentation(labels, table_from_labels(labels)))
    assert w.mapper.training_sources()["m0"] == w.mapper.layer_name("masks")
    viewer.layers["m1 masks"].name = "m1 drawn"  # m1 has no masks of its own now
    w.image_combo.setCurrentText("m1")
    assert w.mapper.training_sources() == {"m0": "m0 masks"}  # named after their image
