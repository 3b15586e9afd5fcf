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
    """Click the napari canvas at image pixel (row, col) with a real Qt mouse event,
    so the widget's own mouse callback runs (2D view, identity layer transform)."""

    def click(viewer, row, col, shift=False):
        from qtpy.QtCore import QPoint, Qt

        native = viewer.window._qt_viewer.canvas.native
        cy, cx = viewer.camera.center[-2:]
        zoom = viewer.camera.zoom
        x = (col - cx) * zoom + native.width() / 2
        y = (row - cy) * zoom + native.height() / 2
        modifier = Qt.ShiftModifier if shift else Qt.NoModifier
        qtbot.mouseClick(native, Qt.LeftButton, modifier, QPoint(round(x), round(y)))

    return click
