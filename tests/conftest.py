import os
from pathlib import Path

import numpy as np
import pytest

DATA = Path(
    os.environ.get("SAMPHASE_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")
).resolve()


@pytest.fixture(scope="session")
def data_dir():
    if not DATA.is_dir():
        pytest.skip(f"real data not found at {DATA} (set SAMPHASE_DATA)")
    return DATA


@pytest.fixture(scope="session")
def micrograph():
    from napari_samphase.core.image.synthetic import make_micrograph

    return make_micrograph((256, 320), n_particles=30, seed=7)


@pytest.fixture(scope="session")
def demo_session():
    """SamSession on the bundled demo-synthetic model (trained on synthetic images)."""
    import torch

    from napari_samphase.core.sam.session import SamSession

    torch.set_num_threads(2)
    return SamSession.from_name("demo-synthetic", device="cpu")


@pytest.fixture()
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPHASE_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def blobs_labels(shape=(64, 64)):
    """Four squares: ids 1, 2 dark, 3, 4 bright, on a mid-gray background."""
    image = np.full(shape, 128, np.uint8)
    labels = np.zeros(shape, np.int32)
    for i, (r, c, v) in enumerate([(5, 5, 30), (5, 40, 35), (40, 5, 220), (40, 40, 225)], 1):
        labels[r : r + 15, c : c + 15] = i
        image[r : r + 15, c : c + 15] = v
    return image, labels


@pytest.fixture()
def click_canvas(qtbot):
    """Click the napari canvas at pixel (row, col) of ``layer`` (default: the first image
    layer) with a real Qt mouse event, so the widget's own mouse callback runs. The
    pixel goes through the layer's data -> world transform (scale, translate, ...) and
    the 2D camera to canvas pixels."""

    def click(viewer, row, col, shift=False, layer=None):
        from napari.layers import Image
        from qtpy.QtCore import QPoint, Qt

        if layer is None:
            layer = next(ly for ly in viewer.layers if isinstance(ly, Image))
        wy, wx = np.asarray(layer.data_to_world((row, col)))[-2:]
        native = viewer.window._qt_viewer.canvas.native
        camera = viewer.scene.camera
        cy, cx = camera.center[-2:]
        x = (wx - cx) * camera.zoom + native.width() / 2
        y = (wy - cy) * camera.zoom + native.height() / 2
        modifier = Qt.ShiftModifier if shift else Qt.NoModifier
        qtbot.mouseClick(native, Qt.LeftButton, modifier, QPoint(round(x), round(y)))

    return click


@pytest.fixture()
def widget(make_napari_viewer, qtbot):
    """(viewer, SamphaseWidget) in a real viewer (gui tests; a module may define its own)."""
    from napari_samphase._qt.samphase_widget import SamphaseWidget

    viewer = make_napari_viewer()
    w = SamphaseWidget(viewer)
    qtbot.addWidget(w)
    return viewer, w
