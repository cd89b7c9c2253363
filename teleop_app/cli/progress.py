"""A terminal progress bar for long commands (export, collect, check).

Callable as ``progress(done, total, what)`` — the callback shape the
exporters take — and quiet when stderr is not a terminal except for a line
every 10 %.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    WIDTH = 30

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._t0 = time.monotonic()
        self._last = 0.0
        self._last_decile = -1
        self._open = False

    def __call__(self, done: int, total: int, what: str = "") -> None:
        now = time.monotonic()
        frac = done / total if total else 1.0
        if self.tty:
            if now - self._last < 0.1 and done < total:
                return
            self._last = now
            filled = int(frac * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            eta = (now - self._t0) / frac * (1 - frac) if 0 < frac < 1 else 0.0
            line = f"\r{self.label} [{bar}] {done}/{total} {what[:40]:<40} eta {eta:4.0f}s"
            self.stream.write(line)
            self._open = True
        else:
            decile = int(frac * 10)
            if decile == self._last_decile:
                return
            self._last_decile = decile
            self.stream.write(f"{self.label}: {done}/{total} {what}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
