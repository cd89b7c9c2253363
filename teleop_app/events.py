"""What the operator session announces to its observers (views, command-line progress).

Listeners get an :class:`Event` and read the session's state for the details;
they are called on whichever thread made the change (the GUI, a command's main
thread, the session's supervisor, a kill switch trigger) and must not block.
"""

from __future__ import annotations

import enum


class Event(enum.Enum):
    DATASET = "dataset"  # the dataset folder changed, or an episode was added to it
    TASK = "task"  # the task sentence changed
    INPUT = "input"  # the active input changed
    MODE = "mode"  # who drives changed (teleop on/off, a policy, a takeover, a replay)
    RUN = "run"  # an episode, rollout or replay started or ended (see OperatorSession.run / last_result)
    KILL = "kill"  # the kill switch latched or was re-armed
    MESSAGE = "message"  # a new line for the operator (OperatorSession.message)
    POLICY = "policy"  # a policy started or finished loading, or was closed
