"""Running core work off the main thread with napari's progress bar and a Cancel."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, Signal

from napari_samphase.core.progress import Cancelled, CancelToken


class _Bridge(QObject):
    progressed = Signal(int, int, str)  # emitted from the worker, delivered in the GUI thread


class TaskRunner:
    """One task at a time: ``fn(progress)`` runs in a thread_worker; ``done(result)`` and
    errors come back to the main thread. ``cancel()`` stops it at the next step."""

    def __init__(
        self,
        on_error: Callable[[Exception], None],
        on_busy: Callable[[bool], None] = lambda busy: None,
    ) -> None:
        self.on_error, self.on_busy = on_error, on_busy
        self.worker = None
        self.token: CancelToken | None = None

    @property
    def busy(self) -> bool:
        return self.worker is not None

    def run(self, fn, done, desc: str):
        from napari.qt.threading import create_worker
        from napari.utils import progress as napari_progress

        if self.busy:
            self.on_error(RuntimeError("another task is still running"))
            return None
        token = self.token = CancelToken()
        bridge = _Bridge()
        pbar = napari_progress(total=1000, desc=desc)

        def show(d, t, m):
            pbar.total = max(int(t), 1)
            pbar.n = int(d)
            pbar.set_description(f"{desc}: {m}" if m else desc)
            pbar.refresh()

        bridge.progressed.connect(show)

        def progress(d, t, m=""):
            token.check()
            bridge.progressed.emit(int(d), int(t), str(m))

        worker = create_worker(
            fn, progress, _start_thread=False, _connect={"returned": done, "errored": self.on_error}
        )

        def finished():
            pbar.close()
            bridge.deleteLater()
            self.worker = self.token = None
            self.on_busy(False)

        worker.finished.connect(finished)
        self.worker = worker
        self.on_busy(True)
        worker.start()
        return worker

    def cancel(self) -> None:
        if self.token is not None:
            self.token.cancel()


__all__ = ["TaskRunner", "Cancelled"]
