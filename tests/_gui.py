"""What the napari/Qt tests share: the docs screenshots they may write (only with
SAMPHASE_DOCS_SCREENSHOTS=1: tests never rewrite tracked files), and waiting for the
widget's worker."""

import os
from pathlib import Path

import pytest

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"
DOCS_SCREENSHOTS = os.environ.get("SAMPHASE_DOCS_SCREENSHOTS") == "1"


def keep_docs_screenshots(*shots: str):
    """A module-wide autouse fixture: the module's tests leave ``shots`` (committed
    screenshots in docs/images) as they were, unless screenshots were asked for."""

    @pytest.fixture(scope="module", autouse=True)
    def _docs_untouched():
        def stamps():
            return {
                s: (DOCS_IMAGES / s).stat().st_mtime_ns for s in shots if (DOCS_IMAGES / s).exists()
            }

        before = stamps()
        yield
        assert DOCS_SCREENSHOTS or stamps() == before, f"a test rewrote one of {shots}"

    return _docs_untouched


def wait_idle(qtbot, widget, timeout=120_000):
    """Until the widget's worker has finished."""
    qtbot.waitUntil(lambda: not widget.runner.busy, timeout=timeout)
