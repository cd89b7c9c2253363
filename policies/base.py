"""The policy interface: an observation in, a chunk of actions out.

A policy answers one observation with ``k`` actions for the ticks starting at
the observation's tick (``actions[i]`` is meant for tick ``chunk.tick + i``).
Actions are either absolute joint targets (gripper joint last, radians) or the
7-dim end-effector step of :data:`drivers.types.EE_DELTA_DIM` (per control tick).
Policies are called from the runner's worker thread, one call at a time.

A runner may pass a :class:`Prefix`: the actions already committed for the
ticks from the observation's tick on (real-time chunking). A policy that can
continue them overrides :meth:`Policy.predict_continuing`; every other policy
ignores the prefix.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from policies.observation import ActionKind, ActionStats, Observation

__all__ = ["ActionChunk", "ActionKind", "Policy", "PolicyError", "PolicyInfo", "Prefix"]


class PolicyError(RuntimeError):
    """A policy failed to answer; the message says why (it becomes the kill-switch reason)."""


@dataclass(frozen=True)
class PolicyInfo:
    """What a policy produces.

    ``chunk_length`` is the number of actions per answer as far as the policy
    knows it (None: decided by the server, any length is accepted).
    ``normalization`` names how the raw outputs relate to robot units (see
    :class:`policies.observation.ActionSpec`); ``stats`` hold the statistics.
    """

    action_kind: ActionKind
    action_dim: int
    chunk_length: int | None = None
    name: str = ""
    normalization: str = "none"
    stats: ActionStats | None = None
    continues: bool = False  # it answers a Prefix by continuing it (Policy.predict_continuing)
    resizes_images: bool = False  # it resizes camera frames itself, as in training: give it the cameras' own


@dataclass(frozen=True)
class ActionChunk:
    """``actions[i]`` is for tick ``tick + i``; times are host monotonic seconds.

    ``timing`` carries whatever timings the policy reports itself (e.g. a
    server's ``infer_ms``), for display next to the runner's own measurement.
    """

    actions: np.ndarray  # [k, action_dim]
    tick: int  # the tick of the observation it answers
    t_request: float
    t_done: float
    timing: Mapping[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.actions.shape[0]) if self.actions.ndim else 0


@dataclass(frozen=True)
class Prefix:
    """Actions committed before the answer: ``actions[i]`` (robot units) is planned for the observation's
    tick ``+ i``; the first ``hold`` of them will have run before the answer can arrive (the inference
    delay in ticks), so a continuing policy answers exactly those and stays close to the rest."""

    actions: np.ndarray  # [m, action_dim]
    hold: int

    def __post_init__(self) -> None:
        if not 0 <= self.hold <= len(self.actions):
            raise ValueError(f"a prefix of {len(self.actions)} actions cannot hold {self.hold}")


class Policy(abc.ABC):
    """Subclasses implement :meth:`predict`; :meth:`infer` stamps the answer with tick and times."""

    info: PolicyInfo

    def reset(self) -> None:
        """Forget per-episode state (called before every rollout)."""

    def close(self) -> None:
        """Release connections or memory."""

    @abc.abstractmethod
    def predict(self, observation: Observation) -> tuple[np.ndarray, Mapping[str, float]]:
        """Raw actions ``[k, action_dim]`` for ``observation`` and any timings the policy reports."""

    def predict_continuing(self, observation: Observation,
                           prefix: Prefix) -> tuple[np.ndarray, Mapping[str, float]]:
        """Like :meth:`predict`, continuing ``prefix``; policies that cannot ignore it."""
        return self.predict(observation)

    def infer(self, observation: Observation, prefix: Prefix | None = None) -> ActionChunk:
        t_request = time.monotonic()
        if prefix is None:
            actions, timing = self.predict(observation)
        else:
            actions, timing = self.predict_continuing(observation, prefix)
        return ActionChunk(np.asarray(actions), observation.tick, t_request, time.monotonic(), dict(timing))
