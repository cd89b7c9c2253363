"""Work the GUI thread must not wait for: a background task with progress, and a latest-only frame decoder.

Results come back as Qt signals, which Qt queues onto the GUI thread because
the emitting object lives there.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore


class TaskSignals(QtCore.QObject):
    progress = QtCore.Signal(int, int, str)  # done, total, message
    done = QtCore.Signal(object)  # the function's result
    failed = QtCore.Signal(str)  # a one-line reason, never a traceback


class Task(QtCore.QRunnable):
    """Runs ``fn(*args, progress=<callback>, **kwargs)`` on a thread pool (``with_progress=False``: no callback).

    An exception becomes :attr:`TaskSignals.failed` with ``"<Type>: <message>"``;
    the traceback goes to stderr for whoever debugs, not into the window.
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, with_progress: bool = True, **kwargs: Any) -> None:
        super().__init__()
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.with_progress = with_progress
        self.signals = TaskSignals()
        self.setAutoDelete(False)  # Python keeps it (and its signals) alive until the pool is done with it

    def run(self) -> None:
        kwargs = dict(self.kwargs)
        if self.with_progress:
            kwargs["progress"] = lambda done, total, message="": self.signals.progress.emit(int(done), int(total),
                                                                                            str(message))
        try:
            result = self.fn(*self.args, **kwargs)
        except Exception as exc:  # any failure is a message for the user
            traceback.print_exc()
            self.signals.failed.emit(f"{type(exc).__name__}: {exc}")
        else:
            self.signals.done.emit(result)


class TaskRunner(QtCore.QObject):
    """A small pool of worker threads that keeps every running :class:`Task` referenced until it has finished."""

    def __init__(self, threads: int = 2, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QtCore.QThreadPool(self)
        self.pool.setMaxThreadCount(threads)
        self._running: set[Task] = set()

    def start(self, task: Task) -> Task:
        self._running.add(task)
        task.signals.done.connect(lambda _=None, t=task: self._running.discard(t))
        task.signals.failed.connect(lambda _=None, t=task: self._running.discard(t))
        self.pool.start(task)
        return task

    @property
    def busy(self) -> bool:
        return bool(self._running)

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until every task has returned (for shutdown and tests)."""
        return self.pool.waitForDone(timeout_ms)


class LatestFrameDecoder(QtCore.QObject):
    """Decodes the frames at the most recently requested time on its own thread.

    :meth:`request` only stores the time: a burst of requests while scrubbing
    costs one decode for the newest, never a queue of stale ones. The decode
    function is ``decode(t) -> result``; :attr:`decoded` delivers
    ``(token, t, result)`` where ``token`` names what was being decoded (an
    episode), so results for a closed episode can be told apart.
    """

    decoded = QtCore.Signal(object, float, object)

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._cond = threading.Condition()
        self._pending: tuple[object, Callable[[float], Any], float] | None = None
        self._busy = False
        self._stop = False
        self.decodes = 0  # how many decodes ran (requests that were superseded are not counted)
        self._thread = threading.Thread(target=self._run, name="review-decoder", daemon=True)
        self._thread.start()

    def request(self, token: object, decode: Callable[[float], Any], t: float) -> None:
        with self._cond:
            self._pending = (token, decode, float(t))
            self._cond.notify()

    def cancel(self) -> None:
        """Forget a pending request and wait for a decode in progress to finish."""
        with self._cond:
            self._pending = None
            while self._busy:
                self._cond.wait()

    @property
    def idle(self) -> bool:
        with self._cond:
            return self._pending is None and not self._busy

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._pending = None
            self._cond.notify_all()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                token, decode, t = self._pending
                self._pending = None
                self._busy = True
            try:
                result = decode(t)
            except Exception as exc:  # a damaged frame must not kill the decoder
                result = f"{type(exc).__name__}: {exc}"
            with self._cond:
                self._busy = False
                self.decodes += 1
                self._cond.notify_all()
            self.decoded.emit(token, t, result)
