"""Synthetic policies and input devices for the policy-runtime tests."""

from __future__ import annotations

import threading
import time

import numpy as np

from drivers.base import Camera, InputDevice
from drivers.types import Frame, InputState
from policies.base import ActionKind, Policy, PolicyInfo


class HoldPolicy(Policy):
    """Joint targets that stay where the arm was observed, plus ``drift`` rad per action on joint 0.

    ``latency`` seconds per answer; ``bad`` maps a call number (1-based) to what to
    answer instead: ``"nan"``, ``"inf"``, ``"shape"``, ``"range"``, ``"raise"`` or
    ``("sleep", seconds)``.
    """

    def __init__(self, chunk: int = 20, latency: float = 0.0, drift: float = 0.0, bad: dict | None = None) -> None:
        self.info = PolicyInfo(ActionKind.JOINT, 6, chunk, name="hold")
        self.chunk = chunk
        self.latency = latency
        self.drift = drift
        self.bad = dict(bad or {})
        self.calls = 0
        self.resets = 0
        self.active = 0  # calls running now; max_active > 1 would mean concurrent calls
        self.max_active = 0
        self.observations = []
        self.lock = threading.Lock()

    def reset(self) -> None:
        self.resets += 1

    def predict(self, observation):
        with self.lock:
            self.calls += 1
            n = self.calls
            self.observations.append(observation)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            return self._answer(observation, self.bad.get(n))
        finally:
            with self.lock:
                self.active -= 1

    def _answer(self, observation, what):
        if isinstance(what, tuple) and what[0] == "sleep":
            time.sleep(what[1])
        elif self.latency:
            time.sleep(self.latency)
        q = observation.state.joint_pos
        actions = np.repeat(q[None, :], self.chunk, axis=0)
        actions[:, 0] += self.drift * np.arange(1, self.chunk + 1)
        if what == "nan":
            actions[2, 3] = np.nan
        elif what == "inf":
            actions[0, 2] = -np.inf
        elif what == "shape":
            actions = actions[:, :5]
        elif what == "range":
            actions[:, 0] = 5.0
        elif what == "raise":
            raise RuntimeError("model exploded\nsecond line: CUDA out of memory")
        return actions, {}


class Hand(InputDevice):
    """A human input whose twist and joint targets the test sets."""

    def __init__(self, name: str = "hand") -> None:
        super().__init__(name)
        self.twist = np.zeros(6)
        self.gripper: float | None = None
        self.buttons: frozenset[str] = frozenset()

    def read(self) -> InputState:
        return InputState(device=self.name, t_host=time.monotonic(), ee_twist=self.twist.copy(),
                          gripper=self.gripper, buttons=self.buttons)


def add_input(rig, device: InputDevice) -> None:
    rig.loop.attach_input(device).result(timeout=2)


class ExpertPolicy(Policy):
    """The sim's scripted expert answering as a policy: end-effector steps, the same step ``chunk`` times.

    It reads the robot's state itself (privileged sim information), as the expert does as an input device.
    """

    def __init__(self, robot, rate_hz: float = 100.0, chunk: int = 5) -> None:
        from drivers.sim.scripted import ScriptedExpert, ScriptedExpertConfig

        self.info = PolicyInfo(ActionKind.EE_DELTA, 7, chunk, name="expert-policy")
        self.expert = ScriptedExpert(ScriptedExpertConfig(name="expert-policy"), robot=robot)
        self.period = 1.0 / rate_hz
        self.chunk = chunk

    def reset(self) -> None:
        self.expert.reset()

    def predict(self, observation):
        state = self.expert.read()
        step = np.append(state.ee_twist * self.period, state.gripper)
        return np.repeat(step[None, :], self.chunk, axis=0), {}


class StillCamera(Camera):
    """A camera that has published one frame and never changes (no thread, nothing to render)."""

    def __init__(self, name: str, image: np.ndarray) -> None:
        super().__init__(name, image.shape[1], image.shape[0], 30.0)
        self._publish(Frame(name, image, t_capture=time.monotonic(), t_host=time.monotonic(), seq=0))

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def load_hold(path, **options) -> HoldPolicy:
    """A checkpoint loader for the loader-registry tests."""
    policy = HoldPolicy(**options)
    policy.path = path
    return policy
