"""Driving a :class:`~policies.runner.PolicyRunner` tick by tick without a rig (for strategy and speed tests)."""

from __future__ import annotations

import numpy as np

from drivers.types import RobotState
from policies.base import ActionKind, Policy, PolicyInfo
from policies.observation import ActionSpec, ObservationSource
from policies.runner import PolicyRunner
from policies.strategies import Strategy
from waiting import wait_for

DIM = 6


class RampPolicy(Policy):
    """Chunks of ``chunk`` joint targets rising by ``slope`` rad per tick on every joint from the observed
    tick's ramp value; records the observation and prefix of every call (None when it came without one)."""

    def __init__(self, chunk: int = 20, slope: float = 0.01, continues: bool = True) -> None:
        self.info = PolicyInfo(ActionKind.JOINT, DIM, chunk, name="ramp", continues=continues)
        self.chunk, self.slope = chunk, slope
        self.prefixes: list = []
        self.observations: list = []

    def predict(self, observation):
        self.observations.append(observation)
        self.prefixes.append(None)
        return self._ramp(observation.tick), {}

    def predict_continuing(self, observation, prefix):
        self.observations.append(observation)
        self.prefixes.append(prefix)
        return self._ramp(observation.tick), {}

    def _ramp(self, tick: int) -> np.ndarray:
        return np.repeat(self.slope * (tick + np.arange(self.chunk))[:, None], DIM, axis=1)


def runner(policy: Policy, strategy: Strategy, **kwargs) -> PolicyRunner:
    spec = ActionSpec(ActionKind.JOINT, np.full(DIM, -10.0), np.full(DIM, 10.0))
    return PolicyRunner(policy, strategy, spec, ObservationSource({}, "task"), **kwargs)


def drive(run: PolicyRunner, ticks: int, state: RobotState | None = None) -> list[np.ndarray | None]:
    """Step ``ticks`` ticks; every answer is waited for so it arrives on the tick after its request."""
    if state is None:
        state = RobotState(t_host=0.0, joint_pos=np.zeros(DIM), joint_vel=np.zeros(DIM), gripper=0.0,
                           ee_pos=np.zeros(3))
    out = []
    run.start(lambda reason: None)
    try:
        for tick in range(ticks):
            command = run.step(tick, tick * 0.01, state)
            out.append(None if command is None else command.positions)
            assert wait_for(lambda: not run.in_flight, 5.0)
    finally:
        run.stop()
    return out
