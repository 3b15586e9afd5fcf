"""The core stays headless and light: no napari/Qt/magicgui, no heavy import at start."""

import ast
import subprocess
import sys
from pathlib import Path

import napari_samphase

PKG = Path(napari_samphase.__file__).parent
GUI = {"napari", "qtpy", "magicgui", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "vispy"}


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0]


def test_core_and_cli_never_import_gui_packages():
    files = [*sorted((PKG / "core").rglob("*.py")), *sorted((PKG / "cli").rglob("*.py"))]
    assert len(files) > 20  # the glob found the subpackages
    offenders = {f.relative_to(PKG).as_posix(): sorted(set(_imports(f)) & GUI) for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_package_import_is_light():
    code = (
        "import sys, napari_samphase, napari_samphase.cli, napari_samphase.core.proposers,"
        " napari_samphase.core.phases.clustering;"
        "heavy = [m for m in ('torch', 'segment_anything', 'sklearn', 'napari', 'qtpy')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_layer_contracts_hold():
    """import-linter's layer contracts (pyproject.toml) replace a line cap."""
    import shutil

    exe = shutil.which("lint-imports")
    assert exe, "import-linter is a testing dependency"
    out = subprocess.run(
        [exe], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    assert out.returncode == 0, out.stdout[-2000:]
    assert "Core layers" in out.stdout and " 0 broken" in out.stdout


def test_lazy_public_names_resolve():
    missing = [name for name in napari_samphase._LAZY if getattr(napari_samphase, name) is None]
    assert missing == []
