"""The npe2 manifest: it validates, every command imports, the menus are napari's own
contributable ones, and napari really shows and runs them (Layers > Segment / Classify /
Measure drive the widget as its buttons do)."""

from importlib import import_module
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")

MANIFEST = Path(__file__).resolve().parents[1] / "src" / "napari_samphase" / "napari.yaml"
MENUS = {
    "napari/layers/segment": {"napari-samphase.open_widget", "napari-samphase.segment_everything"},
    "napari/layers/classify": {"napari-samphase.find_phases"},
    "napari/layers/measure": {
        "napari-samphase.open_measurements",
        "napari-samphase.measure_labels",
    },
}


@pytest.fixture(scope="module")
def manifest():
    import npe2

    return npe2.PluginManifest.from_file(MANIFEST)


def test_the_installed_manifest_is_this_file(manifest):
    import npe2

    installed = npe2.PluginManifest.from_distribution("napari-samphase")
    assert installed.name == manifest.name == "napari-samphase"
    assert installed.contributions.commands == manifest.contributions.commands


def test_every_command_imports_and_is_callable(manifest):
    manifest.validate_imports()
    ids = [cmd.id for cmd in manifest.contributions.commands]
    assert len(ids) == len(set(ids))
    for cmd in manifest.contributions.commands:
        module, attr = cmd.python_name.split(":")
        assert callable(getattr(import_module(module), attr)), cmd.id


def test_menus_are_napari_contributable_and_name_plain_commands(manifest):
    from napari._app_model.constants import MenuId

    menus = manifest.contributions.menus
    contributable = {str(m) for m in MenuId.contributables()}
    assert set(menus) <= contributable, set(menus) - contributable
    found = {menu: {item.command for item in items} for menu, items in menus.items()}
    assert found == MENUS
    commands = {cmd.id for cmd in manifest.contributions.commands}
    # napari drops widget commands from menus: each menu item must be a plain command
    widgets = {w.command for w in manifest.contributions.widgets}
    for items in found.values():
        assert items <= commands and not items & widgets


@pytest.mark.gui
def test_napari_lists_the_commands_in_its_layers_menus(make_napari_viewer):
    from napari._app_model import get_app_model

    make_napari_viewer()  # registers the installed plugins' contributions
    app = get_app_model()
    for menu, expected in MENUS.items():
        listed = {item.command.id for item in app.menus.get_menu(menu) if hasattr(item, "command")}
        assert expected <= listed, (menu, listed)


@pytest.mark.gui
def test_menu_commands_segment_classify_and_measure(make_napari_viewer, qtbot):
    """Through napari's own command registry (what a menu click runs): open the widget,
    segment the selected image, find phases, then measure the phases layer."""
    from napari._app_model import get_app_model

    from napari_samphase._qt.measure_dock import DOCK_NAME, MeasureDock
    from napari_samphase.core.image.synthetic import make_micrograph

    viewer = make_napari_viewer()
    app = get_app_model()
    m = make_micrograph((96, 128), n_particles=12, seed=3)
    viewer.add_image(m.image, name="other")
    image = viewer.add_image(m.image, name="sample")
    app.commands.execute_command("napari-samphase.open_widget")
    w = viewer.window.dock_widgets["SAM phase mapper (napari-samphase)"]
    w.model_combo.setCurrentText("watershed (no weights)")
    viewer.layers.selection.active = image
    app.commands.execute_command("napari-samphase.segment_everything")
    # the selected image, not the first one (napari hands plugins proxies of its layers)
    assert w.mapper.image_layer.name == "sample"

    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    masks = [ly for ly in viewer.layers if ly is not image and np.asarray(ly.data).max() > 3]
    assert masks, "segment everything made no masks"

    w.k_spin.setValue(3)
    app.commands.execute_command("napari-samphase.find_phases")
    qtbot.waitUntil(lambda: not w.runner.busy, timeout=60_000)
    phases = viewer.layers.selection.active  # the phase layer, selected once shown
    assert phases is not None and phases.data.max() >= 2

    app.commands.execute_command("napari-samphase.open_measurements")
    assert isinstance(w.measure_dock, MeasureDock) and w.measure_dock.table.rowCount() >= 2

    app.commands.execute_command("napari-samphase.measure_labels")
    dock = viewer.window.dock_widgets[f"{DOCK_NAME}: {phases.name}"]
    assert isinstance(dock, MeasureDock)
    assert dock.table.rowCount() == len(np.unique(phases.data))


@pytest.mark.gui
def test_measure_without_a_labels_layer_says_so(make_napari_viewer):
    from napari._app_model import get_app_model

    from napari_samphase.core.errors import InputError

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)))
    with pytest.raises(InputError, match="Labels layer"):
        get_app_model().commands.execute_command("napari-samphase.measure_labels")
