"""How action chunks become one action per control tick.

Strategies are pure and tick-driven: no threads, no clocks. The runner calls
them from the control-loop thread, once per tick and in this order:
:meth:`~Strategy.on_chunk` for an answer that arrived, :meth:`~Strategy.wants_inference`
(an observation of this tick is sent if it says so and nothing is in flight),
then :meth:`~Strategy.action_for` — None means no action for this tick: the
robot holds and the tick counts as starved.

A chunk answering the observation of tick ``t`` holds the actions for ticks
``t, t+1, …``. The strategies differ in how they treat the ticks that passed
while the model was thinking:

:class:`OpenLoop`
    synchronous execution: the robot holds while the model thinks, then runs the
    chunk from its first action, ``replan_every`` actions, and asks again.
:class:`TemporalEnsemble`
    ACT: asks every tick; each tick's action is the weighted mean of every chunk
    that covers it (aligned by tick), weights ``exp(-k * i)``, i = 0 the oldest.
:class:`AsyncChunks`
    asks for the next chunk when fewer than ``threshold`` planned actions remain;
    chunks are aligned by tick, actions whose tick has passed are dropped and the
    overlap is blended: ``latest`` replaces, ``weighted`` keeps ``old_weight`` of the old,
    ``crossfade`` (the default) hands over across the ``r`` overlapping planned ticks with the new chunk's
    weight ``3x² − 2x³`` at ``x = (j + 1)/(r + 1)`` on the ``j``-th of them: a new plan that
    disagrees with the old neither makes the target jump nor its velocity kink at either end
    of the hand-over.
    With ``rtc`` (real-time chunking) every request carries a :class:`~policies.base.Prefix`:
    the actions still planned from the request's tick on, ``hold`` = the inference delay in
    ticks (the largest of the last few measured), which a continuing policy (the built-in
    flow head) answers exactly and continues smoothly; other policies ignore it.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass

import numpy as np

from policies.base import ActionChunk, Prefix
from policies.smoothing import LowPass

STRATEGIES = ("open-loop", "ensemble", "async")
BLENDS = ("crossfade", "latest", "weighted")


@dataclass(frozen=True)
class Plan:
    """What a plot needs: the actions planned from a tick on, the two newest chunks, what was executed."""

    ticks: np.ndarray  # [m] ticks with a planned action, from the current tick on
    actions: np.ndarray  # [m, dim]
    current: ActionChunk | None
    previous: ActionChunk | None
    executed_ticks: np.ndarray  # [n]
    executed: np.ndarray  # [n, dim]


class Strategy(abc.ABC):
    """Common state: the two newest chunks and a bounded history of executed actions."""

    name = ""

    def __init__(self, history: int = 1000) -> None:
        self.history = history
        self.stale_dropped = 0  # actions that arrived for ticks already past (over the strategy's life)
        self.smoothing: LowPass | None = None  # set by make_strategy(smooth_hz=...)
        self.reset()

    def reset(self) -> None:
        """Forget every chunk and planned action (kill, takeover, new episode); keeps nothing queued."""
        self.current: ActionChunk | None = None
        self.previous: ActionChunk | None = None
        self._hist_ticks = np.zeros(self.history, dtype=np.int64)
        self._hist: np.ndarray | None = None
        self._n_hist = 0
        if self.smoothing is not None:
            self.smoothing.reset()
        self._clear()

    def on_chunk(self, chunk: ActionChunk, tick: int) -> None:
        """Take a validated chunk at the start of ``tick``."""
        self.previous, self.current = self.current, chunk
        self._accept(chunk, tick)

    def action_for(self, tick: int) -> np.ndarray | None:
        action = self._action(tick)
        if action is not None and self.smoothing is not None:
            action = self.smoothing.step(action, tick)
        if action is not None:
            if self._hist is None:
                self._hist = np.zeros((self.history, action.shape[0]))
            i = self._n_hist % self.history
            self._hist_ticks[i] = tick
            self._hist[i] = action
            self._n_hist += 1
        return action

    def plan(self, tick: int) -> Plan:
        ticks, actions = self._planned(tick)
        n = min(self._n_hist, self.history)
        if self._hist is None:
            ex_t, ex = np.zeros(0, dtype=np.int64), np.zeros((0, actions.shape[1] if actions.ndim == 2 else 0))
        else:
            order = (np.arange(self._n_hist - n, self._n_hist)) % self.history
            ex_t, ex = self._hist_ticks[order], self._hist[order]
        return Plan(ticks, actions, self.current, self.previous, ex_t, ex)

    def prefix(self, tick: int) -> Prefix | None:
        """What a request sent at ``tick`` should continue (real-time chunking); None: nothing."""
        return None

    @abc.abstractmethod
    def wants_inference(self, tick: int) -> bool: ...

    @abc.abstractmethod
    def _clear(self) -> None: ...

    @abc.abstractmethod
    def _accept(self, chunk: ActionChunk, tick: int) -> None: ...

    @abc.abstractmethod
    def _action(self, tick: int) -> np.ndarray | None: ...

    @abc.abstractmethod
    def _planned(self, tick: int) -> tuple[np.ndarray, np.ndarray]: ...


def _empty_plan(dim: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros((0, dim))


def _dim(chunk: ActionChunk | None) -> int:
    return 0 if chunk is None else int(chunk.actions.shape[1])


class OpenLoop(Strategy):
    """Run ``replan_every`` actions of each chunk (all of a shorter one), then hold until the next arrives."""

    name = "open-loop"

    def __init__(self, replan_every: int, history: int = 1000) -> None:
        if replan_every < 1:
            raise ValueError("replan_every must be at least 1")
        self.replan_every = replan_every
        super().__init__(history)

    def _clear(self) -> None:
        self._queue: np.ndarray | None = None
        self._next = 0

    def _limit(self) -> int:
        return 0 if self._queue is None else min(self.replan_every, len(self._queue))

    def wants_inference(self, tick: int) -> bool:
        return self._next >= self._limit()

    def _accept(self, chunk: ActionChunk, tick: int) -> None:
        self._queue, self._next = chunk.actions, 0

    def _action(self, tick: int) -> np.ndarray | None:
        if self._next >= self._limit():
            return None
        action = self._queue[self._next]
        self._next += 1
        return action

    def _planned(self, tick: int) -> tuple[np.ndarray, np.ndarray]:
        left = self._limit() - self._next
        if left <= 0:
            return _empty_plan(_dim(self.current))
        return np.arange(tick, tick + left), self._queue[self._next: self._limit()]


class TemporalEnsemble(Strategy):
    """ACT's temporal ensemble over every chunk covering a tick; ``k`` is the weight decay (ACT: 0.01)."""

    name = "ensemble"

    def __init__(self, k: float = 0.01, history: int = 1000) -> None:
        self.k = k
        super().__init__(history)

    def _clear(self) -> None:
        self._chunks: list[ActionChunk] = []  # sorted by observation tick: index 0 is the oldest

    def wants_inference(self, tick: int) -> bool:
        return True

    def _accept(self, chunk: ActionChunk, tick: int) -> None:
        self.stale_dropped += max(0, min(tick - chunk.tick, len(chunk)))
        self._chunks.append(chunk)
        self._chunks.sort(key=lambda c: c.tick)
        self._prune(tick)

    def _prune(self, tick: int) -> None:
        self._chunks = [c for c in self._chunks if c.tick + len(c) > tick]

    def blend(self, tick: int) -> np.ndarray | None:
        """The ensembled action for ``tick`` from the chunks held now (None if no chunk covers it)."""
        preds = [c.actions[tick - c.tick] for c in self._chunks if c.tick <= tick < c.tick + len(c)]
        if not preds:
            return None
        w = np.exp(-self.k * np.arange(len(preds)))
        return (w / w.sum()) @ np.asarray(preds)

    def _action(self, tick: int) -> np.ndarray | None:
        self._prune(tick)
        return self.blend(tick)

    def _planned(self, tick: int) -> tuple[np.ndarray, np.ndarray]:
        end = max((c.tick + len(c) for c in self._chunks), default=tick)
        ticks = [t for t in range(tick, end) if any(c.tick <= t < c.tick + len(c) for c in self._chunks)]
        if not ticks:
            return _empty_plan(_dim(self.current))
        return np.asarray(ticks), np.asarray([self.blend(t) for t in ticks])


class AsyncChunks(Strategy):
    """Keep a tick-indexed queue topped up: ask when fewer than ``threshold`` actions are left."""

    name = "async"

    DELAYS = 5  # answers whose delay sets the hold of the next prefix

    def __init__(self, threshold: int, blend: str = "crossfade", old_weight: float = 0.3, history: int = 1000,
                 rtc: bool = False) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        if blend not in BLENDS:
            raise ValueError(f"unknown blend {blend!r} (known: {', '.join(BLENDS)})")
        if not 0.0 <= old_weight <= 1.0:
            raise ValueError("old_weight must be within [0, 1]")
        self.threshold = threshold
        self.blend = blend
        self.old_weight = old_weight
        self.rtc = rtc
        self._delays: list[int] = []  # ticks from observation to arrival of the last DELAYS answers
        super().__init__(history)

    def _clear(self) -> None:
        self._queue: dict[int, np.ndarray] = {}

    def remaining(self, tick: int) -> int:
        return sum(1 for t in self._queue if t >= tick)

    def wants_inference(self, tick: int) -> bool:
        return self.remaining(tick) < self.threshold

    def prefix(self, tick: int) -> Prefix | None:
        if not self.rtc:
            return None
        planned = []
        while tick + len(planned) in self._queue:
            planned.append(self._queue[tick + len(planned)])
        if not planned:
            return None
        return Prefix(np.asarray(planned), min(max(self._delays, default=0), len(planned)))

    def _accept(self, chunk: ActionChunk, tick: int) -> None:
        self._delays = [*self._delays[-(self.DELAYS - 1):], tick - chunk.tick]
        w = self.old_weight if self.blend == "weighted" else 0.0
        overlap = sum(1 for i in range(len(chunk)) if chunk.tick + i >= tick and chunk.tick + i in self._queue)
        for i, action in enumerate(chunk.actions):
            t = chunk.tick + i
            if t < tick:
                self.stale_dropped += 1
                continue
            old = self._queue.get(t)
            if old is not None and self.blend == "crossfade":
                x = (t - tick + 1) / (overlap + 1)
                w = 1.0 - x * x * (3.0 - 2.0 * x)
            self._queue[t] = action if old is None else w * old + (1.0 - w) * action
        self._drop_past(tick)

    def _drop_past(self, tick: int) -> None:
        for t in [t for t in self._queue if t < tick]:
            del self._queue[t]

    def _action(self, tick: int) -> np.ndarray | None:
        self._drop_past(tick)
        return self._queue.pop(tick, None)

    def _planned(self, tick: int) -> tuple[np.ndarray, np.ndarray]:
        ticks = sorted(t for t in self._queue if t >= tick)
        if not ticks:
            return _empty_plan(_dim(self.current))
        return np.asarray(ticks), np.asarray([self._queue[t] for t in ticks])


def make_strategy(name: str, chunk_length: int | None, *, replan_every: int | None = None, k: float = 0.01,
                  threshold: int | None = None, blend: str = "crossfade", old_weight: float = 0.3,
                  rtc: bool = False, smooth_hz: float = 0.0, rate_hz: float | None = None) -> Strategy:
    """A strategy by its CLI name. Defaults follow the chunk length: open-loop runs whole chunks,
    async asks for the next chunk when half of one is left; ``rtc`` only applies to async.
    ``smooth_hz`` > 0 low-passes every action it hands out (:mod:`policies.smoothing`) at ``rate_hz``."""
    half = max(1, (chunk_length or 2) // 2)
    if name == "open-loop":
        strategy: Strategy = OpenLoop(replan_every or chunk_length or 1)
    elif name == "ensemble":
        if not math.isfinite(k):
            raise ValueError("the ensemble weight k must be finite")
        strategy = TemporalEnsemble(k)
    elif name == "async":
        strategy = AsyncChunks(threshold or half, blend, old_weight, rtc=rtc)
    else:
        raise ValueError(f"unknown strategy {name!r} (known: {', '.join(STRATEGIES)})")
    if smooth_hz:
        if rate_hz is None:
            raise ValueError("smoothing needs the control rate")
        strategy.smoothing = LowPass(smooth_hz, rate_hz)
    return strategy
