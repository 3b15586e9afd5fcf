"""Running core work off the main thread with napari's progress bar and a Cancel."""

from __future__ import annotations

from collections.abc import Callable

from qtpy.QtCore import QObject, Signal

from napari_samphase.core.progress import Cancelled, CancelToken


class _Bridge(QObject):
    progressed = Signal(int, int, str)  # emitted from the worker, delivered in the GUI thread


class StageBars:
    """napari progress bars in the units the work reports (``progress(done, total,
    message)``: blocks, prompts, images, bytes). Indeterminate until the first report;
    then each report sets the bar's total and value. A report that changes both the
    message and the total, or goes back in count, starts a new stage and so a new bar
    (image embedding: 12 blocks, then segment everything: 1024 prompts); a new message
    alone only relabels the bar (steps of one stage). Main thread only."""

    def __init__(self, desc: str) -> None:
        from napari.utils import progress

        self.desc, self._progress = desc, progress
        self.bar = progress(total=0, desc=desc)  # total 0: napari shows a busy bar
        self.message: str | None = None

    def show(self, done: int, total: int, message: str = "") -> None:
        bar, total = self.bar, max(int(total), 1)
        new_stage = message != self.message and (total != bar.total or done < bar.n)
        if self.message is not None and new_stage:
            bar.close()
            bar = self.bar = self._progress(total=total, desc=self.desc)
        if bar.total != total:
            bar.total = total
        if message != self.message:
            bar.set_description(f"{self.desc}: {message}" if message else self.desc)
            self.message = message
        bar.update(int(done) - bar.n)  # update() moves napari's bar; setting n would not

    def close(self) -> None:
        self.bar.close()


class TaskRunner:
    """One task at a time: ``fn(progress)`` runs in a thread_worker; ``done(result)`` and
    errors come back to the main thread. ``cancel()`` stops it at the next report."""

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
        """Start ``fn(progress)`` in a worker unless one is running (then ``on_error``).

        Parameters
        ----------
        fn : callable
            ``fn(progress)``, run in a worker thread; ``progress(done, total, message)``
            drives the napari progress bars and raises ``Cancelled`` after ``cancel()``.
        done : callable
            ``done(result)``, called in the main thread with what ``fn`` returned.
        desc : str
            What the bars say (the reported message is appended).
        """
        from napari.qt.threading import create_worker

        if self.busy:
            self.on_error(RuntimeError("another task is still running"))
            return None
        token = self.token = CancelToken()
        bridge = _Bridge()
        bars = StageBars(desc)
        bridge.progressed.connect(bars.show)

        def progress(d, t, m=""):
            token.check()
            bridge.progressed.emit(int(d), int(t), str(m))

        worker = create_worker(
            fn, progress, _start_thread=False, _connect={"returned": done, "errored": self.on_error}
        )

        def finished():
            bars.close()
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


__all__ = ["TaskRunner", "StageBars", "Cancelled"]
