"""Latest-value slots, bounded fan-out queues, rate meters and device reader threads.

The control loop and the camera threads never block on a consumer: they put the
newest value in a slot that viewers poll, and push every value into each
subscriber's bounded queue. A full queue drops the value and counts it, so a
slow consumer shows up as a number, never as a stall or a silent gap.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds the newest value; readers never wait for writers."""

    __slots__ = ("_value", "_count")

    def __init__(self) -> None:
        self._value: T | None = None
        self._count = 0

    def put(self, value: T) -> None:
        # A single reference assignment is atomic under the GIL: no lock needed.
        self._value = value
        self._count += 1

    def get(self) -> T | None:
        return self._value

    @property
    def count(self) -> int:
        return self._count


class Subscription(Generic[T]):
    """A bounded FIFO fed by one producer thread and drained by one consumer."""

    def __init__(self, name: str, maxsize: int) -> None:
        self.name = name
        self.maxsize = maxsize
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self.offered = 0
        self.dropped = 0

    def offer(self, item: T) -> bool:
        """Queue ``item``; if the queue is full, drop it, count it and return False."""
        with self._cond:
            self.offered += 1
            if len(self._items) >= self.maxsize:
                self.dropped += 1
                return False
            self._items.append(item)
            self._cond.notify()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item, waiting up to ``timeout`` seconds; None if none came."""
        with self._cond:
            if not self._items:
                self._cond.wait(timeout)
            return self._items.popleft() if self._items else None

    def drain(self) -> list[T]:
        with self._cond:
            items = list(self._items)
            self._items.clear()
            return items

    def __len__(self) -> int:
        return len(self._items)


class Broadcast(Generic[T]):
    """A latest-value slot plus any number of bounded subscriber queues."""

    def __init__(self) -> None:
        self.latest: LatestSlot[T] = LatestSlot()
        self._subs: tuple[Subscription[T], ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, name: str, maxsize: int = 1024) -> Subscription[T]:
        sub: Subscription[T] = Subscription(name, maxsize)
        with self._lock:
            self._subs = self._subs + (sub,)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not sub)

    def publish(self, value: T) -> None:
        self.latest.put(value)
        for sub in self._subs:  # the tuple is replaced, never mutated: safe without the lock
            sub.offer(value)

    @property
    def subscriptions(self) -> tuple[Subscription[T], ...]:
        return self._subs


class RateMeter:
    """Events per second over a sliding window of recent event times."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: collections.deque[float] = collections.deque()

    def tick(self, t: float | None = None) -> None:
        t = time.monotonic() if t is None else t
        self._times.append(t)
        while self._times and t - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        times = [t for t in self._times if now - t <= self.window_s]
        if len(times) < 2:
            return 0.0
        span = times[-1] - times[0]
        return (len(times) - 1) / span if span > 0 else 0.0


class ReaderThread:
    """A device's reader: one daemon thread that runs until :meth:`stop`.

    The thread's function watches :attr:`stopping` (``while not stopping.is_set()``,
    ``stopping.wait(dt)`` for its sleeps) so that stopping never waits out a sleep.
    """

    def __init__(self) -> None:
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, target: Callable[..., Any], *args: Any, name: str) -> None:
        self.stopping.clear()
        self._thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
