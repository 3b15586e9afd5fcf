"""Progress reporting and cooperative cancellation for long work.

Long functions take ``progress: ProgressCallback | None``; they call it as
``progress(done, total, message)``. The callback may raise :class:`Cancelled`
(or call :meth:`CancelToken.cancel` beforehand) to stop the work between steps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

ProgressCallback = Callable[[int, int, str], None]


class Cancelled(Exception):  # noqa: N818 - reads naturally: `except Cancelled`
    """Raised inside long work when the user cancelled it."""


class CancelToken:
    """Thread-safe flag a GUI sets and a worker checks between steps."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled by the user")


def report(progress: ProgressCallback | None, done: int, total: int, message: str = "") -> None:
    """Call ``progress`` if given; cancellation propagates as :class:`Cancelled`."""
    if progress is not None:
        progress(done, total, message)


def with_cancel(progress: ProgressCallback | None, token: CancelToken | None) -> ProgressCallback:
    """Wrap a callback so every report also checks ``token``."""

    def _cb(done: int, total: int, message: str) -> None:
        if token is not None:
            token.check()
        report(progress, done, total, message)

    return _cb
