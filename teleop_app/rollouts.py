"""How a policy rollout is set up: its options, the runner it gets on a rig, how it is described.

Plain data and pure functions; the operator session (:mod:`teleop_app.operator_session`)
starts and ends rollouts with them, the Policy tab and ``run-policy`` build the options.
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.base import ActionKind, Policy, PolicyInfo
from policies.runner import PolicyRunner
from policies.speed import executed_length
from policies.strategies import BLENDS, STRATEGIES, Strategy, make_strategy
from recordings.run_notes import speed_text
from teleop_app.errors import OperatorError, one_line
from teleop_app.rig import Rig
from teleop_app.takeover import TakeoverConfig

EE_DIM_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")


@dataclass(frozen=True)
class StrategyOptions:
    """How chunks become per-tick actions (see :mod:`policies.strategies`); None: follow the chunk length."""

    name: str = "async"  # one of STRATEGIES
    replan_every: int | None = None  # open-loop: actions run per chunk
    k: float = 0.01  # ensemble: weight decay exp(-k*i), i = 0 the oldest
    threshold: int | None = None  # async: ask for the next chunk below this many planned actions
    blend: str = "crossfade"  # async: one of BLENDS
    rtc: bool = True  # async: real-time chunking for policies that continue a prefix (the flow head)
    smooth_hz: float = 0.0  # > 0: low-pass the per-tick actions at this cutoff (policies.smoothing)

    def build(self, chunk_length: int | None, continues: bool = False, rate_hz: float | None = None) -> Strategy:
        """The strategy for a policy answering ``chunk_length`` actions; ``continues``: it takes a prefix;
        ``rate_hz``: the control rate (needed by a low-pass)."""
        if self.name not in STRATEGIES:
            raise OperatorError(f"unknown strategy {self.name!r} (known: {', '.join(STRATEGIES)})")
        if self.blend not in BLENDS:
            raise OperatorError(f"unknown blend {self.blend!r} (known: {', '.join(BLENDS)})")
        if not self.smooth_hz >= 0:
            raise OperatorError(f"low-pass cutoff {self.smooth_hz:g} Hz: give a positive cutoff, or 0 for none")
        try:
            return make_strategy(self.name, chunk_length, replan_every=self.replan_every, k=self.k,
                                 threshold=self.threshold, blend=self.blend, rtc=self.rtc and continues,
                                 smooth_hz=self.smooth_hz, rate_hz=rate_hz)
        except ValueError as exc:
            raise OperatorError(one_line(exc)) from exc

    def describe(self, continues: bool = False) -> str:
        smooth = f", low-pass {self.smooth_hz:g} Hz" if self.smooth_hz else ""
        if self.name == "open-loop":
            return f"open-loop, re-plan every {self.replan_every or 'chunk'}{smooth}"
        if self.name == "ensemble":
            return f"temporal ensemble, k={self.k:g}{smooth}"
        rtc = ", real-time chunking" if self.rtc and continues else ""
        return f"async, threshold {self.threshold or 'half a chunk'}, {self.blend} blend{rtc}{smooth}"


@dataclass(frozen=True)
class RolloutOptions:
    """One rollout: strategy, takeover (None: only the Take over button), recording, execution speed."""

    strategy: StrategyOptions = StrategyOptions()
    takeover: TakeoverConfig | None = TakeoverConfig()
    record: bool = False  # record the rollout as an episode in the session's dataset folder
    reset_scene: bool = False  # a sim puts the arm home and the cube somewhere new first
    image_size: int = 224  # square size camera images are padded and resized to (policies that do not resize)
    speed: float = 1.0  # chunks run this many times faster than planned, within the rig's step limit
    ablate: tuple[str, ...] = ()  # inputs hidden from the policy (policies.runner.ABLATIONS), for experiments

    def executed_length(self, chunk_length: int | None) -> int | None:
        """Ticks one of the policy's chunks runs for at this speed (what "half a chunk" and "a whole chunk"
        of the strategies mean), None when the server sets the chunk length."""
        return None if chunk_length is None else executed_length(chunk_length, self.speed)

    def describe(self, continues: bool = False) -> str:
        """How the rollout runs, for its episode's notes: ``strategy …``, the speed if not 1, any ablation."""
        speed = f", {speed_text(self.speed)}" if self.speed != 1.0 else ""
        ablate = f", ablated: {' and '.join(self.ablate)}" if self.ablate else ""
        return f"strategy {self.strategy.describe(continues)}{speed}{ablate}"


def runner_for(rig: Rig, policy: Policy, strategy: Strategy, task: str, *, timeout_s: float = 2.0,
               image_size: int | None = 224, speed: float = 1.0, ablate: tuple[str, ...] = ()) -> PolicyRunner:
    """A runner of ``policy`` on ``rig``'s robot and cameras, giving it ``task`` as its instruction;
    at ``speed`` within the rig's ``safety.max_joint_step``, hiding the ``ablate`` inputs."""
    size = None if image_size is None else (image_size, image_size)
    return PolicyRunner.for_robot(rig.robot, rig.cameras, rig.config.rate_hz, policy, strategy, task,
                                  timeout_s=timeout_s, image_size=size, speed=speed,
                                  max_step=rig.config.safety.max_joint_step, ablate=ablate)


def dim_names(info: PolicyInfo, joint_names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Plot titles for each action dimension."""
    if info.action_kind is ActionKind.EE_DELTA:
        return EE_DIM_NAMES[: info.action_dim] + tuple(f"a{i}" for i in range(len(EE_DIM_NAMES), info.action_dim))
    names = tuple(joint_names)
    return names[: info.action_dim] + tuple(f"a{i}" for i in range(len(names), info.action_dim))


def describe_policy(info: PolicyInfo, spec: str) -> str:
    chunk = f"chunks of {info.chunk_length}" if info.chunk_length else "chunk length set by the server"
    kind = "joint targets" if info.action_kind is ActionKind.JOINT else "end-effector steps"
    return f"{info.name or spec}: {info.action_dim} {kind}, {chunk}"
