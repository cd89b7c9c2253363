"""The robot's record of what it was last told to do, readable from any thread.

The control loop appends on every tick while tests, the watchdog and viewers
read; a plain deque raises "mutated during iteration" when a reader walks it
as the loop appends, so readers always get a copy taken under a lock.
"""
from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterator

import numpy as np

Entry = tuple[float, np.ndarray, str]  # (monotonic time sent, joint targets, source of the command)


class CommandLog:
    """The last ``maxlen`` commands a robot sent, oldest first."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._entries: collections.deque[Entry] = collections.deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, q: np.ndarray, source: str) -> None:
        with self._lock:
            self._entries.append((time.monotonic(), q, source))

    def snapshot(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def since(self, t: float) -> list[Entry]:
        """Commands sent at or after monotonic time ``t``."""
        return [e for e in self.snapshot() if e[0] >= t]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __getitem__(self, i: int) -> Entry:
        with self._lock:
            return self._entries[i]
