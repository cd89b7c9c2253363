"""The whole learning loop on the sim, in one command: demos -> training -> rollouts -> comparison; prints JSON.

Each phase runs the command a user would run, in a subprocess with its own sim
rig: ``teleop-app collect`` (the scripted expert, seeds ``--demo-seed`` on),
``teleop-app train`` once per head, ``teleop-app run-policy`` once per
configuration (head x strategy x real-time chunking x speed, plus the
ablations), every rollout batch on the same scene seeds. The comparison reads
the episode files with :mod:`recordings.analysis` (what ``teleop-app compare``
reads). Nothing else runs meanwhile; phases run one after another.

Reported for the demos and for every configuration: success rate, time to
success (mean over successful episodes) and its ratio to the demonstrator's
with a 95 % bootstrap CI, the high-frequency share (>= 3 Hz) of the commanded
joint velocity, watchdog stops and the wrong-object rate (episodes where the
robot lifted a cube the task did not name, ``EpisodeSummary.wrong_object``;
always 0 on the single-cube scene); per head the training wall time.

Ablations (``--ablations``), each with the first strategy, blend, low-pass and
speed, so a user sees what each part buys: ``task`` (a blank task sentence), ``state`` (zeroed
robot state), ``chunk1`` (one action per inference: open-loop, re-plan every
action).

    python benchmarks/learning_loop.py --work /tmp/loop --demos 50 --epochs 20 --rollouts 20 \\
        --heads continuous,flow --strategies async,ensemble --rtc both --ablations task,state,chunk1

``--demos-dir`` reuses a folder of demos instead of collecting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402

from policies.builtin.options import HEADS  # noqa: E402
from policies.strategies import BLENDS, STRATEGIES  # noqa: E402

TASK = "pick up the cube"
ABLATIONS = ("task", "state", "chunk1")


def cli(*argv: str) -> subprocess.CompletedProcess:
    """``teleop-app ARGV`` in a subprocess; stdout captured, stderr echoed as it comes."""
    return subprocess.run([sys.executable, "-m", "teleop_app.cli", *argv], stdout=subprocess.PIPE, text=True)


@dataclass(frozen=True)
class Config:
    """One batch of rollouts: how the policy of ``head`` runs."""

    head: str
    strategy: str
    rtc: bool | None = None  # None: not applicable (only async with the flow head continues chunks)
    speed: float = 1.0
    ablation: str | None = None
    blend: str | None = None  # async only: how overlapping chunks combine (None: the command's default)
    smooth: float = 0.0  # low-pass cutoff of the per-tick actions (0: none)

    @property
    def name(self) -> str:
        parts = [self.head, self.strategy]
        if self.rtc is not None:
            parts.append("rtc" if self.rtc else "no-rtc")
        if self.blend is not None:
            parts.append(self.blend)
        if self.smooth:
            parts.append(f"lowpass{self.smooth:g}")
        if self.speed != 1.0:
            parts.append(f"speed{self.speed:g}")
        if self.ablation:
            parts.append(f"ablate-{self.ablation}")
        return "_".join(parts)

    def run_args(self) -> list[str]:
        strategy = "open-loop" if self.ablation == "chunk1" else self.strategy
        out = ["--strategy", strategy, "--speed", f"{self.speed:g}"]
        if self.ablation == "chunk1":
            out += ["--replan-every", "1"]
        elif self.ablation:
            out += ["--ablate", self.ablation]
        if self.rtc is False:
            out.append("--no-rtc")
        if self.blend is not None and strategy == "async":
            out += ["--blend", self.blend]
        if self.smooth:
            out += ["--smooth", f"{self.smooth:g}"]
        return out


def configs(heads: list[str], strategies: list[str], rtc: str, speeds: list[float],
            ablations: list[str], blends: list[str] | None = None, smooths: list[float] | None = None
            ) -> Iterator[Config]:
    """Every head x strategy x RTC setting x blend (async) x low-pass x speed, then each head's ablations
    (with the first strategy, blend and low-pass, at the first speed)."""
    smooths = smooths or [0.0]
    for head in heads:
        for strategy in strategies:
            continues = head == "flow" and strategy == "async"
            settings = {"both": [True, False], "on": [True], "off": [False]}[rtc] if continues else [None]
            for setting in settings:
                for blend in (blends or [None]) if strategy == "async" else [None]:
                    for smooth in smooths:
                        for speed in speeds:
                            yield Config(head, strategy, setting, speed, blend=blend, smooth=smooth)
        first_blend = (blends or [None])[0] if strategies[0] == "async" else None
        for ablation in ablations:
            yield Config(head, strategies[0], True if head == "flow" and strategies[0] == "async" else None,
                         speeds[0], ablation, first_blend, smooths[0])


def rig_args(rig: str | None) -> list[str]:
    return [] if rig is None else ["--rig", rig]


def task_args(tasks: list[str]) -> list[str]:
    return [a for task in tasks for a in ("--task", task)]


def collect(folder: Path, n: int, seed: int, seconds: float, rig: str | None, tasks: list[str]) -> dict:
    t0 = time.monotonic()
    proc = cli("collect", "--headless", "--input", "scripted", "--episodes", str(n), "--seconds", f"{seconds:g}",
               *task_args(tasks), "--out", str(folder), "--seed", str(seed), *rig_args(rig))
    return {"wall_s": time.monotonic() - t0, "exit_code": proc.returncode}


def train(demos: Path, out: Path, head: str, epochs: int) -> dict:
    t0 = time.monotonic()
    proc = cli("train", str(demos), "--out", str(out), "--head", head, "--epochs", str(epochs))
    return {"wall_s": time.monotonic() - t0, "exit_code": proc.returncode}


def rollouts(checkpoint: Path, folder: Path, config: Config, n: int, seed: int, seconds: float,
             rig: str | None, tasks: list[str]) -> dict:
    stats = folder.parent / f"{folder.name}.stats.json"  # a name may hold a dot (speed1.5)
    t0 = time.monotonic()
    proc = cli("run-policy", "--policy", str(checkpoint), "--episodes", str(n), "--headless", "--seconds",
               f"{seconds:g}", *task_args(tasks), "--out", str(folder), "--seed", str(seed), "--stats-json", str(stats),
               *config.run_args(), *rig_args(rig))
    loop = json.loads(stats.read_text()) if stats.exists() else {}
    runner = (loop.get("policy") or {}).get("runner") or {}
    return {"wall_s": time.monotonic() - t0, "exit_code": proc.returncode,
            "answer_latency_ms": runner.get("latency_ms"), "speed_used": runner.get("speed")}


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def evaluate(folder: Path, demo_times: np.ndarray | None = None) -> dict:
    """What the episodes in ``folder`` show; with ``demo_times`` also the time ratio to the demonstrator."""
    from recordings.analysis.compare import bootstrap_ratio
    from recordings.analysis.metrics import metrics_of
    from recordings.library import episode_files, summarize
    from recordings.reader import Episode

    paths = episode_files(folder) if folder.is_dir() else []
    if not paths:
        return {"episodes": 0}
    metrics, unreadable = metrics_of(paths)
    paths = [m.path for m in metrics]
    success = [m.success == "true" for m in metrics]
    times = np.array([m.values["time_to_success_s"] for m, ok in zip(metrics, success) if ok])
    notes = []
    for path in paths:
        with Episode.open(path) as ep:
            notes.append(str(ep.meta.get("notes", "")))
    out: dict = {
        "episodes": len(paths),
        "unreadable": len(unreadable),
        "success_rate": sum(success) / len(paths) if paths else 0.0,
        "time_to_success_s": _mean(list(times)),
        "hf_share": _mean([m.values["action_hf_share"] for m in metrics]),
        "watchdog_stops": sum("watchdog" in n for n in notes),
        "kill_stops": sum("kill switch" in n for n in notes),
    }
    summaries = [summarize(p) for p in paths]
    out["wrong_object_rate"] = sum(s.wrong_object for s in summaries) / len(paths)
    tasks = sorted({s.task for s in summaries})
    if len(tasks) > 1:  # the scene's sentences alternate: what each sentence got
        out["per_task"] = {task: {"episodes": sum(s.task == task for s in summaries),
                                  "success_rate": _share([s.success == "true" for s in summaries if s.task == task]),
                                  "wrong_object_rate": _share([s.wrong_object for s in summaries if s.task == task])}
                           for task in tasks}
    if demo_times is not None:
        ratio, lo, hi = bootstrap_ratio(demo_times, times)
        out["time_ratio_to_demos"] = {"ratio": None if math.isnan(ratio) else ratio,
                                      "ci95": None if math.isnan(lo) else [lo, hi]}
    out["_times"] = times
    return out


def _split(text: str, known: tuple[str, ...], what: str) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in items if s not in known]
    if unknown:
        raise SystemExit(f"unknown {what} {', '.join(unknown)} (known: {', '.join(known)})")
    return items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for demos, checkpoints and rollouts")
    parser.add_argument("--rig", default=None, help="rig name or file (e.g. sim_so101_two_cubes; default the sim)")
    parser.add_argument("--demos", type=int, default=50)
    parser.add_argument("--demos-dir", type=Path, default=None, help="reuse these demos instead of collecting")
    parser.add_argument("--demo-seed", type=int, default=1000, help="scene seed of the first demo; +1 each")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--heads", default="continuous,flow", help=f"comma-separated ({', '.join(HEADS)})")
    parser.add_argument("--strategies", default="async,ensemble", help=f"comma-separated ({', '.join(STRATEGIES)})")
    parser.add_argument("--rtc", choices=("on", "off", "both"), default="both",
                        help="flow head under async: with real-time chunking, without, or both")
    parser.add_argument("--blend", action="append", choices=BLENDS, default=None,
                        help="async: how overlapping chunks combine; repeat for several (default the command's)")
    parser.add_argument("--smooth", type=float, action="append", default=None, metavar="HZ",
                        help="low-pass cutoff of the per-tick actions (run-policy --smooth); repeat for several "
                             "(default 0: none)")
    parser.add_argument("--speed", type=float, action="append", default=None,
                        help="execution speed; repeat for several (default 1)")
    parser.add_argument("--ablations", default="", help=f"comma-separated ({', '.join(ABLATIONS)})")
    parser.add_argument("--rollouts", type=int, default=20, help="rollouts per configuration")
    parser.add_argument("--rollout-seed", type=int, default=5000, help="scene seed of the first rollout; +1 each")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest demo or rollout")
    parser.add_argument("--task", action="append", default=None,
                        help=f"task sentence of demos and rollouts; repeat to alternate them, e.g. the two-cube "
                             f"scene's 'pick up the red cube' and 'pick up the blue cube' (default {TASK!r})")
    parser.add_argument("--reuse-checkpoints", action="store_true",
                        help="use policy_HEAD.pt already in --work instead of training it again")
    args = parser.parse_args()
    heads = _split(args.heads, HEADS, "head")
    strategies = _split(args.strategies, STRATEGIES, "strategy")
    ablations = _split(args.ablations, ABLATIONS, "ablation")
    speeds = args.speed or [1.0]

    args.work.mkdir(parents=True, exist_ok=True)
    tasks = args.task or [TASK]
    report: dict = {"tasks": tasks, "rig": args.rig or "default", "epochs": args.epochs,
                    "rollouts_per_config": args.rollouts}
    demos = args.demos_dir or args.work / "demos"
    if args.demos_dir is None:
        report["collect"] = collect(demos, args.demos, args.demo_seed, args.seconds, args.rig, tasks)
    report["demos"] = evaluate(demos)
    demo_times = report["demos"].pop("_times", np.zeros(0))

    report["train"] = {}
    checkpoints = {}
    for head in heads:
        checkpoints[head] = args.work / f"policy_{head}.pt"
        if args.reuse_checkpoints and checkpoints[head].exists():
            report["train"][head] = {"reused": str(checkpoints[head]), "exit_code": 0}
        else:
            report["train"][head] = train(demos, checkpoints[head], head, args.epochs)
    report["runs"] = []
    for config in configs(heads, strategies, args.rtc, speeds, ablations, args.blend, args.smooth):
        if report["train"][config.head]["exit_code"] != 0:
            continue
        print(f"learning_loop: {config.name}", file=sys.stderr, flush=True)
        folder = args.work / f"rollouts_{config.name}"
        run = rollouts(checkpoints[config.head], folder, config, args.rollouts, args.rollout_seed, args.seconds,
                       args.rig, tasks)
        result = evaluate(folder, demo_times)
        result.pop("_times", None)
        report["runs"].append({"config": config.name, "head": config.head, "strategy": config.strategy,
                               "rtc": config.rtc, "blend": config.blend, "smooth_hz": config.smooth,
                               "speed": config.speed, "ablation": config.ablation,
                               **run, **result})
    text = json.dumps(report, indent=2)
    (args.work / "learning_loop.json").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
