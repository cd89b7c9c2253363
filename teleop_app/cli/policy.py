"""``teleop-app run-policy``: roll a policy out headless and record every rollout as an episode.

Each episode: reset the scene, hand the robot to the policy, record until the
sim reports success (plus ``--after-success``) or ``--seconds`` pass, label it
with the sim's success detector. A kill (policy error, timeout, out-of-spec
output, watchdog) ends the run at once: the episode is kept, labelled a
failure with the reason in its notes, and the command exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from teleop_app.cli.errors import fail


def add_parsers(sub: argparse._SubParsersAction) -> None:
    from policies.strategies import BLENDS, STRATEGIES
    from teleop_app.cli.sessions import add_batch_arguments

    p = sub.add_parser("run-policy", help="roll out a policy headless and record each rollout")
    p.add_argument("--policy", required=True,
                   help="ws://HOST:PORT (openpi server), http://HOST:PORT/act (OpenVLA server), "
                        "lerobot+grpc://HOST:PORT (LeRobot async-inference server) or a checkpoint file")
    p.add_argument("--headless", action="store_true", help="no window (required: this command has none)")
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--seconds", type=float, default=30.0, help="longest rollout")
    p.add_argument("--task", required=True, action="append",
                   help="the instruction given to the policy and stored with the rollout; give it more than once to "
                        "alternate them (rollout i gets sentence i mod their count, set before its scene reset)")
    p.add_argument("--out", type=Path, required=True, help="dataset folder (created if missing)")
    p.add_argument("--strategy", choices=STRATEGIES, default="async", help="how chunks become per-tick actions")
    p.add_argument("--replan-every", type=int, default=None, help="open-loop: actions run per chunk (default: all)")
    p.add_argument("--threshold", type=int, default=None,
                   help="async: ask for the next chunk below this many planned actions (default: half a chunk)")
    p.add_argument("--blend", choices=BLENDS, default="crossfade",
                   help="async: how overlapping chunks combine (default crossfade: no jump where chunks join)")
    p.add_argument("--ensemble-k", type=float, default=0.01, help="ensemble: weight decay exp(-k*i), i=0 oldest")
    p.add_argument("--rtc", action=argparse.BooleanOptionalAction, default=True,
                   help="async: real-time chunking — the next chunk continues the one executing (policies that "
                        "can: the built-in flow head; default on)")
    p.add_argument("--smooth", type=float, default=0.0, metavar="HZ",
                   help="low-pass the per-tick actions at this cutoff, e.g. 3 (removes the direction changes of "
                        "re-planning, adds a lag of 1/(π·HZ) s; default 0: off)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="execute chunks this many times faster than planned (e.g. 1.3); a speed-up is clipped so it "
                        "never steps a joint more than the rig's safety.max_joint_step per tick (joint-target "
                        "policies)")
    p.add_argument("--ablate", action="append", choices=("task", "state"), default=None,
                   help="experiments: hide an input from the policy — task (a blank sentence) or state (zeroed "
                        "joints); repeat for both; recorded in the episode notes")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds an answer may take before the robot stops")
    p.add_argument("--image-size", type=int, default=224,
                   help="square size images are padded and resized to for server policies (a built-in checkpoint "
                        "gets the cameras' own frames and resizes them as in training)")
    p.add_argument("--action-kind", choices=("joint", "ee_delta"), default=None,
                   help="server policies: what the actions are (openpi default joint, OpenVLA ee_delta)")
    p.add_argument("--chunk-length", type=int, default=None, help="server policies: actions per answer, if known")
    p.add_argument("--obs-map", action="append", default=None, metavar="KEY=STREAM",
                   help="openpi: send rig stream STREAM (state, joints, gripper, ee_pos, task, image:CAM, "
                        "image_chw:CAM) as observation key KEY; repeat for each key")
    p.add_argument("--unnorm-key", default=None, help="OpenVLA: dataset statistics to un-normalize with")
    p.add_argument("--camera", default=None, help="OpenVLA: the camera whose image is sent (default: the first)")
    p.add_argument("--lerobot-policy", default=None, metavar="TYPE",
                   help="LeRobot: the policy type the server loads (act, smolvla, diffusion, pi0, pi05, …)")
    p.add_argument("--lerobot-pretrained", default=None, metavar="NAME_OR_PATH",
                   help="LeRobot: the policy's hub id or path, as the server sees it")
    p.add_argument("--lerobot-device", default="cpu", help="LeRobot: where the server runs the policy (default cpu)")
    p.add_argument("--lerobot-camera", action="append", default=None, metavar="POLICY_NAME=RIG_CAMERA",
                   help="LeRobot: send rig camera RIG_CAMERA as the policy's observation.images.POLICY_NAME; "
                        "repeat for each (default: every rig camera under its own name)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="LeRobot: connect although its protocol sends Python pickles, which run code here when "
                        "loaded (only for a server you control)")
    add_batch_arguments(p)
    p.add_argument("--stats-json", type=Path, default=None, help="write loop and policy statistics here")
    p.add_argument("--takeover", default=None, metavar="INPUT",
                   help="an input of the rig (e.g. spacemouse, leader) whose motion pauses the policy and gives "
                        "you control; those ticks are recorded as intervention (default: no takeover)")
    p.add_argument("--hand-back-after", type=float, default=1.0, metavar="S",
                   help="with --takeover: give control back to the policy after S seconds without motion "
                        "(0: the human keeps it until the rollout ends)")
    p.add_argument("--takeover-twist", type=float, default=None,
                   help="with --takeover: a twist above this (m/s, rad/s) is a takeover (default 0.02)")
    p.add_argument("--takeover-joints", type=float, default=None,
                   help="with --takeover: a leader joint moving more than this (rad) is a takeover (default 0.05)")


def run(args: argparse.Namespace) -> int:
    from drivers.base import DeviceError
    from drivers.registry import ConfigError
    from policies.base import PolicyError
    from recordings.reader import EpisodeError
    from recordings.recorder import RecordingError
    from teleop_app.errors import OperatorError

    try:
        return _run_policy(args)
    except (ValueError, OSError, ConfigError, DeviceError, PolicyError, EpisodeError, RecordingError,
            OperatorError) as exc:
        return fail(exc)


def load_options(args: argparse.Namespace) -> Any:
    """The policy to load and how, from the command line."""
    from policies.loading import LoadOptions

    return LoadOptions(spec=args.policy.strip(), action_kind=args.action_kind, chunk_length=args.chunk_length,
                       obs_map=None if args.obs_map is None else tuple(args.obs_map), camera=args.camera,
                       unnorm_key=args.unnorm_key, timeout_s=args.timeout, lerobot_policy=args.lerobot_policy,
                       lerobot_pretrained=args.lerobot_pretrained, lerobot_device=args.lerobot_device,
                       lerobot_cameras=None if args.lerobot_camera is None else tuple(args.lerobot_camera),
                       trust_pickle=args.trust_pickle)


def _takeover(args: argparse.Namespace, rig: Any) -> Any:
    """The takeover configuration from the command line, or None without ``--takeover``."""
    from teleop_app.takeover import TakeoverConfig

    if args.takeover is None:
        if args.takeover_twist is not None or args.takeover_joints is not None:
            raise ValueError("--takeover-twist and --takeover-joints need --takeover INPUT")
        return None
    if args.takeover not in rig.inputs:
        raise ValueError(f"--takeover {args.takeover}: this rig has no such input (it has: "
                         f"{', '.join(rig.inputs) or 'none'})")
    if args.hand_back_after < 0:
        raise ValueError("--hand-back-after must be ≥ 0")
    defaults = TakeoverConfig()
    return TakeoverConfig(
        input=args.takeover,
        twist_threshold=defaults.twist_threshold if args.takeover_twist is None else args.takeover_twist,
        joint_threshold=defaults.joint_threshold if args.takeover_joints is None else args.takeover_joints,
        auto_hand_back=args.hand_back_after > 0, release_s=args.hand_back_after or defaults.release_s)


def _run_policy(args: argparse.Namespace) -> int:
    from teleop_app.cli.progress import Progress
    from teleop_app.cli.sessions import batch_tasks, report_batch, rig_from_args, running
    from teleop_app.operator_session import BatchPlan, OperatorSession
    from teleop_app.rollouts import RolloutOptions, StrategyOptions
    from teleop_app.runs import EndRules

    if not args.headless:
        raise ValueError("run-policy has no window: add --headless (the desktop app is `teleop-app gui`)")
    if args.episodes < 1 or args.seconds <= 0 or args.timeout <= 0 or not args.speed > 0:
        raise ValueError("--episodes must be ≥ 1, --seconds, --timeout and --speed > 0")
    rig = rig_from_args(args)
    takeover = _takeover(args, rig)
    args.out.mkdir(parents=True, exist_ok=True)
    tasks = batch_tasks(args.task)
    session = OperatorSession(rig, args.out, task=tasks[0], operator=args.operator)
    strategy = StrategyOptions(name=args.strategy, replan_every=args.replan_every, k=args.ensemble_k,
                               threshold=args.threshold, blend=args.blend, rtc=args.rtc, smooth_hz=args.smooth)
    plan = BatchPlan(args.episodes, EndRules(after_success_s=args.after_success, time_limit_s=args.seconds),
                     seed=args.seed, tasks=tasks, rollout=RolloutOptions(strategy=strategy, takeover=takeover, record=True,
                                                            image_size=args.image_size, speed=args.speed,
                                                            ablate=tuple(args.ablate or ())))
    progress = Progress("run-policy")
    try:
        session.load_policy(load_options(args))  # before the loop starts: a checkpoint brings torch
        with running(session):
            report = session.run_batch(plan, progress)
    finally:
        progress.close()
        session.close()  # closes the policy even when the rig never started
    status = report_batch(report, "rollouts")
    stats = rig.loop.stats()
    pol = stats["policy"]
    lat = pol["runner"]["latency_ms"] if pol["runner"] else {}
    print(f"{pol['starved_ticks']} of {pol['ticks']} policy ticks starved (longest {pol['longest_stall_ticks']}), "
          f"answer latency p50 {lat.get('p50') or 0:.0f} ms / max {lat.get('max') or 0:.0f} ms"
          + (f"; {pol['takeovers']} human takeover(s), {pol['intervention_ticks']} intervention ticks"
             if takeover is not None else ""), file=sys.stderr)
    if args.stats_json:
        args.stats_json.write_text(json.dumps(stats, indent=2))
    return status
