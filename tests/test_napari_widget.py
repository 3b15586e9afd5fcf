"""The plugin in a real napari viewer (Qt, under Xvfb in CI), driven as a user would."""

import numpy as np
import pytest

pytest.importorskip("napari")
from tests._gui import wait_idle

pytestmark = pytest.mark.gui


def test_manifest_validates_and_every_python_name_imports():
    from importlib import import_module

    import npe2

    pm = npe2.PluginManifest.from_distribution("napari-samphase")
    pm.validate_imports()
    for cmd in pm.contributions.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(import_module(module), attr))


def test_sample_data_and_writers(tmp_path):
    from napari_samphase._napari.sample_data import coins, synthetic_micrograph
    from napari_samphase._napari.writers import write_features_csv, write_labels_tiff

    (img, meta, kind), (phases, _, lkind) = synthetic_micrograph()
    assert kind == "image" and lkind == "labels" and img.shape == phases.shape
    assert coins()[0][0].ndim == 2
    labels = np.zeros((20, 20), np.uint32)
    labels[2:5, 2:5] = 3
    out = write_labels_tiff(str(tmp_path / "l.tif"), labels, {})
    import tifffile

    assert (tifffile.imread(out[0]) == labels).all()
    out = write_features_csv(str(tmp_path / "t.csv"), labels, {"features": None})
    with open(out[0]) as fh:
        assert fh.read().splitlines()[1].startswith("3,9,")


def test_full_run_weight_free(widget, qtbot, tmp_path):
    """Sample image -> superpixels -> phases -> same-phase click -> edit -> re-cluster."""
    from napari_samphase._napari.layers import phase_boxes_name
    from napari_samphase._napari.sample_data import synthetic_micrograph

    viewer, w = widget
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    assert w.image_combo.currentText() == "synthetic micrograph"

    def boxes_name(phase):
        return phase_boxes_name("synthetic micrograph", phase)

    w.model_combo.setCurrentText("superpixels (no weights)")
    w.run_segment_everything()
    wait_idle(qtbot, w)
    masks = viewer.layers["synthetic micrograph masks"]
    assert masks.data.max() > 50
    assert "area" in masks.features
    assert len(masks.features) == len(np.unique(masks.data[masks.data > 0]))

    w.k_spin.setValue(4)
    w.background_combo.setCurrentText("ignore")
    w.run_find_phases()
    wait_idle(qtbot, w)
    phases = viewer.layers["synthetic micrograph phases"]
    assert phases.data.max() == 4
    assert "phase" in masks.features
    assert w.table.rowCount() == 4

    # click a component: the highlight equals the core same-phase query
    w.set_mode("same phase")
    rows, cols = np.nonzero(masks.data == masks.data[100, 100])
    hit = w.click(rows[0], cols[0])
    expected = w.mapper.query(rows[0], cols[0])
    assert hit.phase == expected.phase and set(hit.mask_ids) == set(expected.mask_ids)
    assert phases.show_selected_label and phases.selected_label == hit.phase
    boxes = viewer.layers[boxes_name(hit.phase)]
    assert boxes.visible and boxes.opacity == 1 and len(boxes.data) == len(hit.mask_ids)
    corners = np.array([[d[:, 0].min(), d[:, 1].min()] for d in boxes.data])
    assert np.array_equal(np.sort(corners, 0), np.sort(hit.bboxes[:, :2].astype(float), 0))
    others = [viewer.layers[boxes_name(p)] for p in w.mapper.query.phases() if p != hit.phase]
    assert others and all(layer.opacity == 0 for layer in others)
    assert not masks.visible  # the other components show as the bare image
    same = set(np.unique(masks.data[phases.data == hit.phase]))
    assert same == set(hit.mask_ids.tolist())

    # hand assignment sticks through re-clustering
    w.set_mode("assign")
    w.assign_spin.setValue(1 if hit.phase != 1 else 2)
    target = w.assign_spin.value()
    w.click(rows[0], cols[0])
    # proofreading: paint one mask id over another (merge) with napari's own edit
    clicked = masks.data[rows[0], cols[0]]
    a, b = [i for i in np.unique(masks.data) if i not in (0, clicked)][:2]
    edited = masks.data.copy()
    edited[edited == b] = a
    masks.data = edited
    w.run_find_phases()
    wait_idle(qtbot, w)
    assert phases.data[rows[0], cols[0]] == target
    assert b not in set(np.unique(masks.data))

    out = tmp_path / "phases.csv"
    w.mapper.export_table(str(out))
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == list(w.mapper.table)
    assert "area_um2" in lines[0]  # the sample's nominal pixel size: areas in um^2
    assert len(lines) == 1 + w.table.rowCount()
    assert (tmp_path / "phases.png").is_file()
    # the panoptic map beside the table holds both layers: phase of every pixel, and
    # each particle's pixels from one mask
    from napari_samphase.core.outputs.panoptic import phase_and_instance, read_panoptic

    pan_phase, pan_inst = phase_and_instance(
        read_panoptic(tmp_path / "phases_panoptic.png", tmp_path / "phases_panoptic.json")
    )
    assert np.array_equal(pan_phase, np.asarray(phases.data))
    for i in np.unique(pan_inst[pan_inst > 0]):
        assert len(np.unique(np.asarray(masks.data)[pan_inst == i])) == 1

    w.set_mode("same phase")
    hit = w.click(rows[0], cols[0])
    assert viewer.layers[boxes_name(hit.phase)].opacity == 1
    bg = w.click(-5, -5)
    assert bg.is_background and "background" in w.info.text()
    assert masks.visible and not phases.show_selected_label
    assert all(viewer.layers[boxes_name(p)].opacity == 0 for p in w.mapper.query.phases())

    # new masks: the boxes of the old ones go, and so does the same-phase index
    w.run_segment_everything()
    wait_idle(qtbot, w)
    assert not [layer for layer in viewer.layers if "same-phase boxes" in layer.name]
    assert w.mapper.query is None


def test_errors_become_notifications_not_tracebacks(widget, qtbot):
    viewer, w = widget
    w.model_combo.setCurrentText("vit_b")
    w.run_find_phases()  # no image, no masks
    wait_idle(qtbot, w)
    assert "error" in w.info.text()


def _sample_with_threshold_masks(widget, qtbot):
    """The sample micrograph segmented by the weight-free threshold proposer; its
    masks layer."""
    from napari_samphase._napari.sample_data import synthetic_micrograph

    viewer, w = widget
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    w.model_combo.setCurrentText("threshold (no weights)")
    w.run_segment_everything()
    wait_idle(qtbot, w)
    return viewer.layers[w.mapper.layer_name("masks")]


def test_undo_of_label_edits_survives_reclustering(widget, qtbot):
    viewer, w = widget
    masks = _sample_with_threshold_masks(widget, qtbot)
    before = np.asarray(masks.data).copy()
    victim = int(before[before > 0][0])
    masks.selected_label = victim
    r, c = np.argwhere(before == 0)[0]
    masks.paint((r, c), victim)  # a user's brush stroke, recorded in napari's history
    assert masks.data[r, c] == victim
    w.run_find_phases()
    wait_idle(qtbot, w)
    masks.undo()
    assert (np.asarray(masks.data) == before).all()


def test_same_phase_by_mouse_on_the_canvas(make_napari_viewer, qtbot, click_canvas):
    """A real mouse click in same-phase mode highlights the clicked mask's phase; one on
    the matrix says background."""
    from scipy import ndimage as ndi

    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.samphase_widget import SamphaseWidget

    viewer = make_napari_viewer(show=True)
    w = SamphaseWidget(viewer)
    qtbot.addWidget(w)
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    w.model_combo.setCurrentText("watershed, dark + bright particles (no weights)")
    w.run_segment_everything()
    wait_idle(qtbot, w)
    w.run_find_phases()
    wait_idle(qtbot, w)
    viewer.reset_view()
    w.set_mode("same phase")
    masks_name, phases_name = w.mapper.layer_name("masks"), w.mapper.layer_name("phases")
    masks = np.asarray(viewer.layers[masks_name].data)
    for mask_id in np.unique(masks)[[3, -3]]:
        r, c = np.argwhere(ndi.binary_erosion(masks == mask_id, iterations=2))[0]
        click_canvas(viewer, r, c)
        expected = w.mapper.query(r, c)
        assert viewer.layers[phases_name].selected_label == expected.phase
        assert f"{len(expected.mask_ids)} components" in w.info.text()
    r, c = np.argwhere(ndi.binary_erosion(masks == 0, iterations=4))[0]
    click_canvas(viewer, r, c)
    assert "background" in w.info.text()
    assert not viewer.layers[phases_name].show_selected_label


def test_every_weight_free_entry_segments_the_sample(widget, qtbot):
    """Each listed weight-free proposer runs from the widget with its own options: on
    the sample (dark and bright particles) the dark + bright watershed finds more."""
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.samphase_widget import WEIGHT_FREE
    from napari_samphase.core.evaluation.metrics import instance_metrics
    from napari_samphase.core.image.synthetic import sample_micrograph

    viewer, w = widget
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    truth = sample_micrograph().instances
    recall = {}
    for entry in WEIGHT_FREE:
        w.model_combo.setCurrentText(entry)
        assert not w.load_btn.isEnabled()  # nothing to load without weights
        w.run_segment_everything()
        wait_idle(qtbot, w)
        labels = np.asarray(viewer.layers["synthetic micrograph masks"].data)
        recall[entry] = instance_metrics(labels, truth)["recall50"]
        assert labels.max() > 0
    both = recall["watershed, dark + bright particles (no weights)"]
    assert both >= 0.8 and both > recall["watershed (no weights)"]


def test_torch_can_load_after_the_viewer_exists():
    """Opening the widget in a running napari imports torch after the OpenGL canvas
    (Mesa's LLVM) is loaded; triton's LLVM would segfault there."""
    import subprocess
    import sys

    code = (
        "import napari; v = napari.Viewer(show=False);"
        "import napari_samphase._qt.samphase_widget;"
        "import torch, torchvision.ops; from segment_anything import sam_model_registry;"
        "print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def _bars_image_and_labels():
    """Two dark squares on a mid-grey image and a mask along the whole bottom edge: a
    click wrapped round to row -1 would land on that mask."""
    image = np.full((48, 64), 128, np.uint8)
    labels = np.zeros((48, 64), np.int32)
    labels[5:15, 5:15], labels[5:15, 30:40], labels[40:, :] = 1, 2, 3
    image[labels > 0] = 40
    return image, labels


def _apply_labels(mapper, labels):
    from napari_samphase.core.image.labels import Segmentation, table_from_labels

    mapper.apply_segmentation(Segmentation(labels, table_from_labels(labels)))


def test_assign_outside_the_image_says_so_and_never_wraps(widget):
    from napari_samphase.core.errors import InputError

    viewer, w = widget
    image, labels = _bars_image_and_labels()
    viewer.add_image(image, name="bars")
    _apply_labels(w.mapper, labels)
    w.set_mode("assign")
    w.assign_spin.setValue(2)
    for row, col in [(-1, 10), (-0.6, 10), (10, -3), (48, 10), (10, 64), (500, 500)]:
        w.click(row, col)
        assert "outside the image" in w.info.text(), (row, col)
        with pytest.raises(InputError, match="outside the image"):
            w.mapper.assign(row, col, 2)
    assert w.mapper.fixed == {}
    # inside, pixel centres are integers: -0.4 still lies in row 0's pixel, 47.4 in row 47
    assert w.mapper.assign(47.4, 10, 2) == 3
    assert w.mapper.assign(9.6, 34.4, 1) == 2
    assert w.mapper.fixed == {3: 2, 2: 1}


def _two_segmentations(widget, qtbot):
    """The masks layer after threshold masks, then watershed masks (two undo steps);
    (layer, first labels, second labels)."""
    viewer, w = widget
    masks = _sample_with_threshold_masks(widget, qtbot)
    first = np.asarray(masks.data).copy()
    w.model_combo.setCurrentText("watershed, dark + bright particles (no weights)")
    w.run_segment_everything()
    wait_idle(qtbot, w)
    return masks, first, np.asarray(masks.data).copy()


def test_segment_everything_can_be_undone(widget, qtbot):
    masks, first, second = _two_segmentations(widget, qtbot)
    assert first.max() > 0 and not np.array_equal(first, second)
    masks.undo()  # Ctrl+Z
    assert np.array_equal(np.asarray(masks.data), first)
    masks.undo()
    assert not np.asarray(masks.data).any()  # before any segmentation
    masks.redo()
    masks.redo()
    assert np.array_equal(np.asarray(masks.data), second)


def test_derived_layers_follow_the_image_scale_translate_and_units(
    make_napari_viewer, qtbot, click_canvas
):
    """A micrograph with a pixel size: masks, phases, boxes and prompts sit on it, and a
    real mouse click in same-phase mode hits the component under the cursor."""
    from scipy import ndimage as ndi

    from napari_samphase._napari.layers import phase_boxes_name
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.samphase_widget import SamphaseWidget

    viewer = make_napari_viewer(show=True)
    w = SamphaseWidget(viewer)
    qtbot.addWidget(w)
    data, meta, _ = synthetic_micrograph()[0]
    meta = {k: v for k, v in meta.items() if k not in ("scale", "units")}
    image = viewer.add_image(
        data, scale=(0.5, 0.25), translate=(10, 20), units=("um", "um"), **meta
    )

    def boxes_name(phase):
        return phase_boxes_name(image.name, phase)

    w.model_combo.setCurrentText("watershed, dark + bright particles (no weights)")
    w.run_segment_everything()
    wait_idle(qtbot, w)
    w.run_find_phases()
    wait_idle(qtbot, w)
    masks, phases = viewer.layers[f"{image.name} masks"], viewer.layers[f"{image.name} phases"]
    derived = [masks, phases, w.mapper.prompts_layer(), w.mapper.boxes_layer()]
    derived += [viewer.layers[boxes_name(p)] for p in w.mapper.query.phases()]
    for layer in derived:
        assert np.allclose(layer.scale, image.scale), layer.name
        assert np.allclose(layer.translate, image.translate), layer.name
        assert tuple(layer.units) == tuple(image.units), layer.name

    viewer.reset_view()
    viewer.scene.camera.zoom *= 2  # a data pixel spans several screen pixels across
    viewer.scene.camera.center = image.data_to_world((128, 160))
    labels = np.asarray(masks.data)
    fg = np.argwhere(labels > 0)
    r, c = fg[len(fg) // 2]
    assert masks.get_value(image.data_to_world((r, c)), world=True) == labels[r, c]
    w.set_mode("same phase")
    inner = {
        i: ndi.binary_erosion(labels == i, iterations=2) for i in np.unique(labels[96:160, 120:200])
    }
    near = [i for i, core in inner.items() if i and core.any()]
    assert len(near) >= 3
    for mask_id in near[:3]:
        r, c = np.argwhere(inner[mask_id])[0]
        world = image.data_to_world((r, c))
        click_canvas(viewer, r, c, layer=image)
        expected = w.mapper.query(r, c)
        assert expected.mask_id == mask_id
        # drawn where the image is: the phase layer's pixel under that world point
        assert phases.get_value(world, world=True) == expected.phase
        assert phases.selected_label == expected.phase
        assert f"mask {mask_id}:" in w.info.text()
        box = viewer.layers[boxes_name(expected.phase)]
        corners = np.array([d.min(0) for d in box.data])
        row0, col0 = expected.bboxes[list(expected.mask_ids).index(mask_id), :2]
        assert np.isclose(corners, (row0, col0)).all(1).any()
        assert np.allclose(box.data_to_world((row0, col0)), image.data_to_world((row0, col0)))


def test_progress_bars_count_the_reported_units(qtbot, monkeypatch):
    """One napari bar per stage, in the units the core reports (blocks, then prompts):
    the bar's total is the reported total and its value moves with each report."""
    import napari.utils

    from napari_samphase._qt.workers import TaskRunner

    made = []

    class Bar(napari.utils.progress):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.values = []
            self.events.value.connect(lambda e: self.values.append(e.value))
            made.append(self)

    monkeypatch.setattr(napari.utils, "progress", Bar)

    def work(progress):
        for i in range(1, 13):
            progress(i, 12, "image embedding")
        for i in range(0, 1025, 256):
            progress(i, 1024, "segment everything")
        return "ok"

    errors, results = [], []
    runner = TaskRunner(errors.append)
    runner.run(work, results.append, "segment everything")
    qtbot.waitUntil(lambda: not runner.busy, timeout=10_000)
    assert results == ["ok"] and errors == []
    assert [b.total for b in made] == [12, 1024]
    assert made[0].values[-1] == 12 and made[0].values == sorted(made[0].values)
    assert made[1].values[-1] == 1024 and 512 in made[1].values
    assert "image embedding" in made[0].desc and "segment everything" in made[1].desc
    assert all(b not in napari.utils.progress._all_instances for b in made)  # closed


def test_pixel_phase_mode_maps_texture_phases_and_its_components_become_the_masks(widget, qtbot):
    """Equal-gray lamellae: the widget's "pixels" and "auto" modes find the texture
    phases (the masks mode cannot), and the same-phase click works on the components."""
    from napari_samphase.core.evaluation.metrics import semantic_metrics
    from napari_samphase.core.image.kinds import KINDS

    viewer, w = widget
    image, truth = KINDS["lamellae"](3)
    viewer.add_image(image, name="lamellae")
    masks_name, phases_name = "lamellae masks", "lamellae phases"
    w.k_spin.setValue(int(truth.max()) + 1)
    scores = {}
    for mode in ("pixels", "auto"):
        w.mode_combo.setCurrentText(mode)
        w.run_find_phases()
        wait_idle(qtbot, w)
        scores[mode] = semantic_metrics(np.asarray(viewer.layers[phases_name].data), truth)["miou"]
        masks = np.asarray(viewer.layers[masks_name].data)
        assert np.array_equal(masks, w.mapper.result.labels)
    assert w.mapper.result.mode == "pixels"  # what auto chose
    assert scores["pixels"] >= 0.8 and scores["auto"] == scores["pixels"]
    w.set_mode("same phase")
    hit = w.click(100, 100)
    assert not hit.is_background
    assert hit.phase == int(np.asarray(viewer.layers[phases_name].data)[100, 100])


def test_mask_features_follow_undo_redo_and_painting(widget, qtbot):
    """layer.features is the contract with other plugins: it must describe the masks
    on screen after Ctrl+Z, Ctrl+Shift+Z and a brush stroke, not the masks before."""
    masks, first, second = _two_segmentations(widget, qtbot)

    def ids_of(labels):
        return np.unique(labels[labels > 0]).tolist()

    def areas_of(labels):
        return np.bincount(labels.ravel())[ids_of(labels)].tolist()

    assert ids_of(first) != ids_of(second) or areas_of(first) != areas_of(second)
    masks.undo()
    assert masks.features["index"].tolist() == ids_of(first)
    assert masks.features["area"].tolist() == areas_of(first)
    masks.redo()
    assert masks.features["index"].tolist() == ids_of(second)
    new_id = int(second.max()) + 1
    masks.brush_size = 5
    masks.paint((3, 3), new_id)
    assert masks.features["index"].tolist()[-1] == new_id


def test_mask_features_follow_an_undo_made_while_the_masks_are_hidden(widget, qtbot):
    """The same-phase highlight hides the masks layer; an undo then must still reach
    layer.features once the layer shows again."""
    masks, first, second = _two_segmentations(widget, qtbot)
    masks.visible = False
    masks.undo()
    masks.visible = True
    assert masks.features["index"].tolist() == np.unique(first[first > 0]).tolist()
