"""The measurement dock: its table and histogram show what core.measure computes, the
border rule, the highlighted phase and the bins follow its controls, and it follows a
PhaseMapper's notifications. The docs screenshot is written into docs/images only with
SAMPHASE_DOCS_SCREENSHOTS=1 (tests never rewrite tracked files)."""

from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("napari")
from tests._gui import DOCS_IMAGES, DOCS_SCREENSHOTS, keep_docs_screenshots

pytestmark = pytest.mark.gui

SHOT = "measure-dock.png"
docs_untouched = keep_docs_screenshots(SHOT)


def disc(shape, centre, r):
    rr, cc = np.ogrid[: shape[0], : shape[1]]
    return (rr - centre[0]) ** 2 + (cc - centre[1]) ** 2 <= r * r


def scene():
    """Phase 1: discs of radii 4..9 inside, and a large one cut by the left edge; phase 2:
    small squares. Sizes spread over a decade, so log and linear bins differ."""
    shape = (90, 120)
    phases = np.zeros(shape, np.int32)
    for i, r in enumerate((4, 5, 6, 7, 8, 9)):
        phases[disc(shape, (20 + 45 * (i % 2), 20 + 15 * i), r)] = 1
    phases[disc(shape, (45, 3), 12)] = 1  # touches the left edge
    for r0, c0, side in [(5, 100, 2), (80, 20, 3), (40, 60, 5), (75, 105, 4)]:
        phases[r0 : r0 + side, c0 : c0 + side] = 2
    return phases


@pytest.fixture()
def dock(qtbot):
    from napari_samphase._qt.measure_dock import MeasureDock

    d = MeasureDock()
    qtbot.addWidget(d)
    return d


def expected_sizes(phases, pixel_size, exclude_border=True):
    from napari_samphase.core.measure import particle_table, particles_of_phases

    t = particle_table(particles_of_phases(phases), pixel_size, phases)
    ecd = t[f"ecd{pixel_size.suffix()}"]
    keep = ~t["touches_border"] if exclude_border else np.ones(len(ecd), bool)
    return {p: ecd[(t["phase"] == p) & keep] for p in (1, 2)}


def drawn(dock):
    """Phase -> (bin edges, heights) of the step histograms on the dock's axes."""
    from matplotlib.patches import StepPatch

    out = {}
    for patch in dock.ax.patches:
        if isinstance(patch, StepPatch):
            values, edges, _ = patch.get_data()
            out[int(patch.get_label().split()[-1])] = (np.asarray(edges), np.asarray(values))
    return out


def column(dock, header_start):
    headers = [dock.table.horizontalHeaderItem(j).text() for j in range(dock.table.columnCount())]
    j = next(j for j, h in enumerate(headers) if h.startswith(header_start))
    return [dock.table.item(i, j).text() for i in range(dock.table.rowCount())]


def test_table_and_histogram_show_the_core_measurements(dock):
    from napari_samphase.core.image.units import PixelSize
    from napari_samphase.core.measure import phase_statistics, size_histogram

    phases, size = scene(), PixelSize(0.5, "um")
    dock.update(phases, None, size)

    stats = phase_statistics(phases, None, size, exclude_border=True)
    assert dock.table.rowCount() == len(stats["phase"]) == 3
    assert column(dock, "phase") == ["background", "1", "2"]
    assert column(dock, "count") == [
        f"{n} ({m})" for n, m in zip(stats["count"], stats["count_measured"], strict=True)
    ]
    fractions = [float(text.split()[0]) for text in column(dock, "area %")]
    np.testing.assert_allclose(fractions, stats["area_fraction_pct"], atol=0.051)
    means = column(dock, "ECD mean")
    assert means[0] == "–" and float(means[1]) == pytest.approx(stats["ecd_mean_um"][1], rel=1e-2)
    headers = [dock.table.horizontalHeaderItem(j).text() for j in range(dock.table.columnCount())]
    assert "ECD mean (µm)" in headers and "per µm²" in headers

    sizes = expected_sizes(phases, size)
    bars = drawn(dock)
    assert set(bars) == {1, 2}
    pooled = np.concatenate(list(sizes.values()))
    assert dock.n_bins() == max(5, int(np.ceil(np.sqrt(len(pooled)))))  # auto: sqrt(sized)
    edges, counts = size_histogram(pooled, "log", dock.n_bins())
    for p in (1, 2):  # every phase on the same bins, its own particles counted
        np.testing.assert_allclose(bars[p][0], edges)
        np.testing.assert_array_equal(bars[p][1], np.histogram(sizes[p], edges)[0])
        assert bars[p][1].sum() == len(sizes[p])
    np.testing.assert_array_equal(bars[1][1] + bars[2][1], counts)
    assert "µm" in dock.ax.get_xlabel()


def test_pixels_when_the_size_is_unknown(dock):
    dock.update(scene())
    headers = [dock.table.horizontalHeaderItem(j).text() for j in range(dock.table.columnCount())]
    assert "ECD mean (px)" in headers and "px" in dock.ax.get_xlabel()
    assert "unknown" in dock.info.text()


def test_exclude_border_toggles_the_edge_particle(dock, qtbot):
    from napari_samphase.core.image.units import PixelSize

    phases = scene()
    dock.update(phases, None, PixelSize.pixels())
    assert dock.exclude_border.isChecked()  # the stereology default
    inner = expected_sizes(phases, PixelSize.pixels(), exclude_border=True)
    assert drawn(dock)[1][1].sum() == len(inner[1]) == 6
    assert column(dock, "count")[1] == "7 (6)"  # counted, not sized

    dock.exclude_border.setChecked(False)
    every = expected_sizes(phases, PixelSize.pixels(), exclude_border=False)
    assert drawn(dock)[1][1].sum() == len(every[1]) == 7
    assert column(dock, "count")[1] == "7 (7)"
    assert drawn(dock)[2][1].sum() == 4  # phase 2 has no edge particle
    # the cut disc is the largest: sizing it raises the mean
    assert float(column(dock, "ECD mean")[1]) > np.mean(inner[1])

    dock.exclude_border.setChecked(True)
    assert drawn(dock)[1][1].sum() == 6


def test_highlight_draws_that_phase_bold(dock):
    dock.update(scene())
    widths = {p: dock_patch(dock, p).get_linewidth() for p in (1, 2)}
    assert widths[1] == widths[2]
    dock.set_highlight(2)
    assert dock_patch(dock, 2).get_linewidth() > widths[2]
    assert dock_patch(dock, 1).get_linewidth() < dock_patch(dock, 2).get_linewidth()
    assert dock.table.item(2, 1).font().bold() and not dock.table.item(1, 1).font().bold()
    dock.set_highlight(None)
    assert dock_patch(dock, 1).get_linewidth() == dock_patch(dock, 2).get_linewidth()
    assert not dock.table.item(2, 1).font().bold()


def dock_patch(dock, phase):
    from matplotlib.patches import StepPatch

    return next(
        p for p in dock.ax.patches if isinstance(p, StepPatch) and p.get_label() == f"phase {phase}"
    )


def test_log_and_linear_bins(dock):
    dock.update(scene())
    log_edges = drawn(dock)[1][0]
    assert dock.ax.get_xscale() == "log"
    np.testing.assert_allclose(np.diff(np.log(log_edges)), np.log(log_edges[1] / log_edges[0]))
    dock.bins_combo.setCurrentText("linear")
    lin_edges = drawn(dock)[1][0]
    assert dock.ax.get_xscale() == "linear"
    np.testing.assert_allclose(np.diff(lin_edges), lin_edges[1] - lin_edges[0])
    assert not np.allclose(lin_edges, log_edges)
    assert drawn(dock)[1][1].sum() == 6  # the same particles, other bins
    assert len(lin_edges) == dock.n_bins() + 1 == 5 + 1  # 10 sized: auto gives the floor 5
    dock.n_bins_spin.setValue(12)
    assert len(drawn(dock)[1][0]) == 13 and drawn(dock)[2][1].sum() == 4


def test_measures_once_per_update_and_exports_csv(dock, tmp_path, monkeypatch):
    import csv

    import napari_samphase.core.measure as measure

    calls = []
    real = measure.phase_statistics

    def counting(*args, **kw):
        calls.append(kw.get("exclude_border"))
        return real(*args, **kw)

    monkeypatch.setattr(measure, "phase_statistics", counting)
    dock.update(scene())
    dock.set_highlight(1)
    dock.bins_combo.setCurrentText("linear")
    dock.exclude_border.setChecked(False)
    dock.exclude_border.setChecked(True)  # both rules cached: no third computation
    assert calls == [True, False]

    dock.export_csv(tmp_path / "stats.csv")
    with open(tmp_path / "stats.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    stats = real(scene())
    assert list(rows[0]) == list(stats) and len(rows) == len(stats["phase"])
    assert [int(r["count"]) for r in rows] == stats["count"].tolist()


def test_large_maps_are_measured_in_a_worker_and_stale_results_dropped(dock, qtbot, monkeypatch):
    import time

    import napari_samphase._qt.measure_dock as measure_dock
    import napari_samphase.core.measure as measure
    from napari_samphase.core.measure import phase_statistics

    monkeypatch.setattr(measure_dock, "WORKER_PIXELS", 100)  # every map counts as large
    first, second = scene(), scene()
    second[second == 2] = 0  # the squares gone: two rows left
    real = measure.particle_table

    def slow_on_the_first(labels, size, phases):
        if (phases == 2).any():  # the first map finishes after the second
            time.sleep(0.5)
        return real(labels, size, phases)

    monkeypatch.setattr(measure, "particle_table", slow_on_the_first)
    dock.update(first)
    assert dock._pending and dock.table.rowCount() == 0 and "measuring" in dock.info.text()
    dock.update(second)  # arrives before the first worker is done
    qtbot.waitUntil(lambda: not dock._pending, timeout=10_000)
    qtbot.wait(700)  # the first worker's result comes later: dropped
    stats = phase_statistics(second)
    assert column(dock, "phase") == ["background", "1"]
    assert column(dock, "count") == [
        f"{n} ({m})" for n, m in zip(stats["count"], stats["count_measured"], strict=True)
    ]
    assert set(drawn(dock)) == {1}
    dock.exclude_border.setChecked(False)  # the other rule: from the cached particles
    assert column(dock, "count")[1] == "7 (7)"


def test_update_without_labels_is_qt_repaint(dock):
    dock.update()  # QWidget.update(): no measurement, no error
    assert dock.phase_labels is None and dock.table.rowCount() == 0


def test_follows_mapper_notifications(qtbot):
    """("phases", run) measures at once, ("highlight", p) redraws, ("masks", None) measures
    the edited masks after a pause (with their phases from the last clustering)."""
    from napari_samphase._qt.measure_dock import MeasureDock
    from napari_samphase.core.image.units import PixelSize
    from napari_samphase.core.measure import particles_of_phases

    phases = scene()
    masks = particles_of_phases(phases)
    ids = np.unique(masks[masks > 0])
    lut = np.zeros(ids.max() + 1, int)
    for i in ids:
        lut[i] = phases[masks == i][0]
    result = SimpleNamespace(
        phase_labels=phases, labels=masks, phase_of=lambda x: lut[np.asarray(x)]
    )
    subscribers = []
    mapper = SimpleNamespace(
        subscribe=subscribers.append,
        pixel_size=PixelSize(2, "nm"),
        result=result,
        masks_data=lambda: edited,
    )
    dock = MeasureDock(None, mapper)
    qtbot.addWidget(dock)
    assert subscribers == [dock.notify]
    dock.notify("phases", SimpleNamespace(result=result))
    assert dock.table.rowCount() == 3 and dock.pixel_size.um == pytest.approx(0.002)
    assert "ECD mean (µm)" in [dock.table.horizontalHeaderItem(j).text() for j in range(7)]
    assert column(dock, "count")[1] == "7 (6)"
    dock.notify("highlight", 1)
    assert dock_patch(dock, 1).get_linewidth() > dock_patch(dock, 2).get_linewidth()
    measured = dock._particles
    dock.notify("phases", result)  # the same phases again (the dock re-shown): cached
    assert dock._particles is measured and dock.table.rowCount() == 3

    edited = masks.copy()
    edited[edited == ids[0]] = 0  # a particle deleted
    dock.notify("masks", None)
    assert column(dock, "count")[1] == "7 (6)"  # not yet: edits are measured on a pause
    qtbot.waitUntil(lambda: column(dock, "count") != ["0 (0)", "7 (6)", "4 (4)"], timeout=3000)
    gone = lut[ids[0]]
    counts = [int(t.split()[0]) for t in column(dock, "count")]
    assert counts[gone] == (7 if gone == 1 else 4) - 1


def test_measure_selected_labels_in_a_viewer(make_napari_viewer):
    """Layers > Measure on a phase map, and on masks whose features carry their phase;
    a labels layer without a scale takes its image's pixel size."""
    from napari_samphase._qt.measure_dock import DOCK_NAME, measure_selected_labels
    from napari_samphase.core.measure import particles_of_phases, phase_statistics

    viewer = make_napari_viewer()
    phases = scene()
    viewer.add_image(np.zeros(phases.shape), name="img", scale=(0.5, 0.5), units="um")
    layer = viewer.add_labels(phases, name="img phases")
    dock = measure_selected_labels(viewer)
    assert viewer.window.dock_widgets[f"{DOCK_NAME}: img phases"] is dock
    assert dock.pixel_size.known and dock.pixel_size.um == pytest.approx(0.5)
    assert dock.table.rowCount() == 3
    assert measure_selected_labels(viewer) is dock  # measured again in the same dock

    masks = particles_of_phases(phases)
    ids = np.unique(masks[masks > 0])
    phase_of = np.array([phases[masks == i][0] for i in ids])
    viewer.add_labels(masks, name="img masks", features={"index": ids, "phase": phase_of})
    dock = measure_selected_labels(viewer)
    stats = phase_statistics(phases, masks, dock.pixel_size)
    assert column(dock, "count") == [
        f"{n} ({m})" for n, m in zip(stats["count"], stats["count_measured"], strict=True)
    ]
    np.testing.assert_array_equal(dock.phase_labels, phases)
    assert layer in viewer.layers


def test_screenshot_after_phases_on_the_sample(make_napari_viewer, qtbot, tmp_path):
    """The widget on the sample micrograph: Find phases docks the measurement dock, in
    the sample's units; erasing a mask (and undoing it) is measured again; a same-phase
    click draws that phase bold."""
    from napari_samphase._napari.sample_data import synthetic_micrograph
    from napari_samphase._qt.measure_dock import MeasureDock
    from napari_samphase._qt.samphase_widget import SamphaseWidget
    from napari_samphase.core.image.io import read_array
    from napari_samphase.core.measure import phase_statistics

    viewer = make_napari_viewer(show=True)
    w = SamphaseWidget(viewer)
    viewer.window.add_dock_widget(w, name="SAM phase mapper")
    data, meta, _ = synthetic_micrograph()[0]
    viewer.add_image(data, **meta)
    if DOCS_SCREENSHOTS:  # the docs show SAM's masks (the demo model: slow on a CPU)
        w.model_combo.setCurrentText("demo-synthetic")
        w.device_combo.setCurrentText("cpu")
        w.pps.setValue(24)
    else:
        w.model_combo.setCurrentText("watershed (no weights)")
    w.run_segment_everything()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=300_000)
    w.k_spin.setValue(4)
    w.run_find_phases()
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)

    dock = w.measure_dock
    assert isinstance(dock, MeasureDock) and dock.mapper is w.mapper
    assert dock.pixel_size.known and "µm" in dock.ax.get_xlabel()
    mapper = w.mapper
    stats = phase_statistics(mapper.result.phase_labels, mapper.masks_data(), mapper.pixel_size)
    assert dock.table.rowCount() == len(stats["phase"]) >= 3
    assert column(dock, "count") == [
        f"{n} ({m})" for n, m in zip(stats["count"], stats["count_measured"], strict=True)
    ]

    phases = mapper.result.phase_labels
    biggest = int(np.bincount(phases[phases > 0]).argmax())
    rows, cols = np.nonzero(phases == biggest)
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]  # a pixel of that phase
    # a mask erased in the masks layer: measured again once the edits pause
    masks_layer = viewer.layers[mapper.layer_name("masks")]
    before = [int(t.split()[0]) for t in column(dock, "count")]
    row = list(stats["phase"]).index(biggest)
    mask_id = int(np.asarray(masks_layer.data)[r, c])
    assert mask_id > 0
    masks_layer.contiguous = False  # the bucket fills every pixel of the mask
    with masks_layer.block_history():  # as napari's fill bucket does on a click
        masks_layer.fill((r, c), 0)  # label 0: the mask erased
    assert not (np.asarray(masks_layer.data) == mask_id).any()
    qtbot.waitUntil(lambda: int(column(dock, "count")[row].split()[0]) == before[row] - 1)
    masks_layer.undo()
    qtbot.waitUntil(lambda: int(column(dock, "count")[row].split()[0]) == before[row])

    w.set_mode("same phase")
    hit = w.click(r, c)
    assert hit.phase == biggest == dock.highlight
    assert dock_patch(dock, biggest).get_linewidth() > max(
        p.get_linewidth() for p in dock.ax.patches if p.get_label() != f"phase {biggest}"
    )

    frame = dock.parent()  # napari's dock frame: floated to its own size for the picture
    frame.setFloating(True)
    frame.resize(640, 720)
    qtbot.wait(300)
    out = DOCS_IMAGES if DOCS_SCREENSHOTS else tmp_path
    assert dock.grab().save(str(out / SHOT))
    pixels = read_array(out / SHOT)
    assert pixels.shape[0] > 400 and pixels.std() > 5
