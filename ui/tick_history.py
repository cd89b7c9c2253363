"""The last few seconds of control-loop ticks as numpy arrays, for scrolling plots (no Qt here)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from drivers.types import TickRecord


class TickHistory:
    """A ring of ``capacity`` ticks: time, measured joints, commanded joints (gripper last in both)."""

    def __init__(self, n_joints: int, capacity: int = 1000) -> None:
        self.capacity = capacity
        self.t = np.zeros(capacity)
        self.measured = np.zeros((capacity, n_joints))
        self.commanded = np.zeros((capacity, n_joints))
        self.n = 0  # ticks ever added

    def extend(self, records: Iterable[TickRecord]) -> int:
        added = 0
        for r in records:
            i = self.n % self.capacity
            self.t[i] = r.t
            self.measured[i] = r.state.joint_pos
            self.commanded[i] = r.command
            self.n += 1
            added += 1
        return added

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(t, measured, commanded) in time order, oldest first."""
        if self.n <= self.capacity:
            sl = slice(0, self.n)
            return self.t[sl], self.measured[sl], self.commanded[sl]
        order = np.roll(np.arange(self.capacity), -(self.n % self.capacity))
        return self.t[order], self.measured[order], self.commanded[order]
