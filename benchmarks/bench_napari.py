"""Widget latency in a real napari viewer (run under a display, e.g. ``xvfb-run -a``).

    xvfb-run -a python benchmarks/bench_napari.py

Same-phase highlight on a 2048x2048 image with ~2,000 masks (layer refresh
included: the Qt event queue is drained and the canvas redrawn once), and click ->
preview with the demo model and with a randomly initialised vit_b.
"""

from __future__ import annotations

import time

import numpy as np

from _report import machine, table, write_section


def _drain(app, viewer):
    """Draw one frame holding every pending change: Qt merges the update requests, so
    processing events once after asking for an update paints the canvas exactly once
    (and runs the layer-list and control repaints the change queued)."""
    viewer.window._qt_viewer.canvas.native.update()
    app.processEvents()


def highlight_latency(viewer, app, n_clicks=30):
    """Clicks go through the docked widget in its same-phase mode, as a user's would
    (its status line is repainted too); the setup calls its PhaseMapper directly."""
    from napari_samphase._qt.samphase_widget import SamphaseWidget
    from napari_samphase.core.image.synthetic import make_micrograph

    m = make_micrograph((2048, 2048), n_particles=2000, radius=(6, 18), gap=2, seed=0)
    layer = viewer.add_image(m.image, name="big")
    widget = SamphaseWidget(viewer)
    viewer.window.add_dock_widget(widget, name="samphase")
    mapper = widget.mapper
    mapper.image_layer = layer
    from napari_samphase.core.image.labels import Segmentation, table_from_labels

    mapper.apply_segmentation(Segmentation(m.instances, table_from_labels(m.instances)))
    t0 = time.perf_counter()
    run = mapper.compute_phases(k=4)  # the worker's part
    t_compute = time.perf_counter() - t0
    t0 = time.perf_counter()
    mapper.apply_phases(run)  # the main thread's part
    _drain(app, viewer)
    t_apply = time.perf_counter() - t0
    frame = []
    for _ in range(10):
        t0 = time.perf_counter()
        _drain(app, viewer)
        frame.append(time.perf_counter() - t0)
    ids = np.unique(m.instances)[1:]
    widget.set_mode("same phase")
    rng = np.random.default_rng(0)
    times = []
    for i in rng.choice(ids, n_clicks, replace=False):
        r, c = np.argwhere(m.instances == i)[0]
        t0 = time.perf_counter()
        hit = widget.click(r, c)
        _drain(app, viewer)
        times.append(time.perf_counter() - t0)
    return {
        "n": len(ids),
        "k": len(hit.mask_ids),
        "median": float(np.median(times)),
        "worst": float(np.max(times)),
        "frame": float(np.median(frame)),
        "compute": t_compute,
        "apply": t_apply,
    }


def preview_latency(viewer, app, model, n_clicks=10):
    from napari_samphase._napari.phase_mapper import PhaseMapper
    from napari_samphase.core.image.synthetic import make_micrograph
    from napari_samphase.core.sam.loading import build_sam, load_sam
    from napari_samphase.core.sam.session import SamSession

    m = make_micrograph((512, 512), seed=0)
    layer = viewer.add_image(m.image, name=f"img {model}")
    mapper = PhaseMapper(viewer)
    mapper.image_layer = layer
    sam = load_sam(model, device="cpu") if model == "demo-synthetic" else build_sam(model)
    mapper.session = SamSession(sam.eval())
    mapper.embed()
    rng = np.random.default_rng(0)
    times = []
    for r, c in rng.integers(20, 490, size=(n_clicks, 2)):
        mapper.clear_prompts()
        _drain(app, viewer)
        t0 = time.perf_counter()
        mapper.add_prompt(r, c)
        _drain(app, viewer)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    h = highlight_latency(viewer, app)
    viewer.layers.clear()
    demo = preview_latency(viewer, app, "demo-synthetic")
    vitb = preview_latency(viewer, app, "vit_b")
    rows = [
        [
            f"same-phase highlight, 2048x2048, {h['n']} masks ({h['k']} in the clicked phase)",
            f"{h['median'] * 1000:.0f}",
            f"{h['worst'] * 1000:.0f}",
        ],
        ["one redraw of that scene, nothing changed", f"{h['frame'] * 1000:.0f}", "-"],
        [
            "find phases, worker part (features, k-means, box layers)",
            f"{h['compute'] * 1000:.0f}",
            "-",
        ],
        ["find phases, main-thread part (layers added, table)", f"{h['apply'] * 1000:.0f}", "-"],
        ["click -> preview mask, demo-synthetic, 512x512", f"{demo * 1000:.0f}", "-"],
        ["click -> preview mask, vit_b (random weights), 512x512", f"{vitb * 1000:.0f}", "-"],
    ]
    write_section(
        "napari",
        f"""## Widget latency (`benchmarks/bench_napari.py`)

Machine: {machine()}; napari {napari.__version__} under Xvfb (software OpenGL).
Times include the layer updates and draining the Qt event queue (canvas redraw).

{table(["action", "median ms", "worst ms"], rows)}
""",
    )
    viewer.close()


if __name__ == "__main__":
    main()
