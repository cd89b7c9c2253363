"""How much loading a built-in checkpoint while the control loop runs disturbs the loop (the Policy tab's Load).

Each variant runs in a fresh process: the sim rig with its cameras starts, then a
worker thread loads the same checkpoint ``--loads`` times through the operator
session (what the Policy tab does), while the loop's ticks are recorded with the
rig's shipped watchdog. Variants:

- ``cold``: nothing of the policy runtime was imported before the loop started
  (the first load imports torch while the loop runs);
- ``preloaded``: the session started with ``preload_policy_loaders=True`` (as the
  window does): the loaders' libraries were imported before the loop started.

Prints JSON: per variant the worst loop period during the loads, its p99, watchdog
trips, and the time of the first and of the later loads.

    python benchmarks/policy_load.py [--loads 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MUJOCO_GL", "egl")


def make_checkpoint(path: Path) -> None:
    """An untrained built-in policy for the sim rig's cameras and joints (loading it costs what a trained one does)."""
    import numpy as np

    from drivers.so101.joints import JOINTS
    from policies.builtin.checkpoint import save_checkpoint
    from policies.builtin.model import BuiltinConfig, BuiltinNet, Normalization

    config = BuiltinConfig(cameras=("front", "wrist"), joint_names=JOINTS)
    rng = np.random.default_rng(0)
    norm = Normalization.of(rng.normal(size=(64, len(JOINTS))), rng.normal(size=(64, config.steps, len(JOINTS))))
    save_checkpoint(path, config, norm, BuiltinNet(config), {"benchmark": "policy_load"})


def run_variant(variant: str, checkpoint: str, loads: int) -> dict:
    from policies.loading import LoadOptions
    from teleop_app.config import load_rig
    from teleop_app.gc_pauses import freeze_long_lived
    from teleop_app.operator_session import OperatorSession
    from teleop_app.rig import build_rig

    rig = build_rig(load_rig(None), active_input="scripted")
    session = OperatorSession(rig, tempfile.mkdtemp())
    freeze_long_lived()
    session.start(preload_policy_loaders=variant == "preloaded")
    ticks = rig.loop.subscribe("bench", maxsize=100_000)
    try:
        deadline = time.monotonic() + 20
        while any(c.latest() is None for c in rig.cameras.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(1.0)
        ticks.drain()
        durations: list[float] = []

        def load_all() -> None:
            for _ in range(loads):
                t = time.monotonic()
                session.load_policy(LoadOptions(checkpoint))
                durations.append(time.monotonic() - t)

        t0 = time.monotonic()
        worker = threading.Thread(target=load_all)
        worker.start()
        worker.join()
        t1 = time.monotonic()
        time.sleep(0.2)
        records = [r for r in ticks.drain() if t0 - 0.1 <= r.t <= t1 + 0.1]
    finally:
        session.close()
    import numpy as np

    periods = np.diff([r.t for r in records]) * 1e3
    return {
        "variant": variant,
        "worst_period_ms": round(float(periods.max()), 1) if periods.size else None,
        "period_p99_ms": round(float(np.percentile(periods, 99)), 1) if periods.size else None,
        "watchdog_trips": rig.loop.watchdog.trips,
        "kill_reason": rig.kill.reason,
        "first_load_s": round(durations[0], 3),
        "later_loads_s_mean": round(float(np.mean(durations[1:])), 3) if len(durations) > 1 else None,
        "loads": len(durations),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2, help="each variant this many times, alternated")
    parser.add_argument("--variant", choices=("cold", "preloaded"), help=argparse.SUPPRESS)  # the child's job
    parser.add_argument("--checkpoint", help=argparse.SUPPRESS)
    parser.add_argument("--make-checkpoint", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_checkpoint:
        make_checkpoint(Path(args.make_checkpoint))
        return
    if args.variant:
        print(json.dumps(run_variant(args.variant, args.checkpoint, args.loads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "untrained.pt"
        subprocess.run([sys.executable, __file__, "--make-checkpoint", str(checkpoint)], check=True, cwd=ROOT)
        results = []
        for _ in range(args.rounds):
            for variant in ("cold", "preloaded"):
                out = subprocess.run([sys.executable, __file__, "--variant", variant, "--checkpoint", str(checkpoint),
                                      "--loads", str(args.loads)], capture_output=True, text=True, cwd=ROOT)
                if out.returncode != 0:
                    raise SystemExit(out.stderr)
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(json.dumps({"loads_per_run": args.loads, "runs": results}, indent=2))


if __name__ == "__main__":
    main()
