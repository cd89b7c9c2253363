"""Doctor check: the rig's control loop holds its rate on this machine for a few seconds.

The rig is built from its file without cameras (they have their own check and
their own process), started, left running ``seconds`` with no input driving it
(the loop holds the robot), read through ``rig.loop.stats()`` and closed. It
runs on the loop's own thread, as in the app. Thresholds (docs/hardware.md):
fail below 95 % of the target rate or when the watchdog or an error stopped the
robot; warn when the period's p99 exceeds 1.5 periods or more than 1 % of the
ticks overran.
"""

from __future__ import annotations

import time

from drivers.base import DeviceError
from drivers.registry import ConfigError
from teleop_app.config import RigConfig
from teleop_app.doctor.result import FAIL, OK, WARN, Check
from teleop_app.rig import build_rig

MIN_RATE_FRACTION = 0.95
MAX_P99_PERIODS = 1.5
MAX_OVERRUN_FRACTION = 0.01
BUSY_FIX = "close what loads the CPU (`top`), or use a machine with more cores; then run doctor again"


def loop_trial(config: RigConfig, seconds: float = 3.0) -> Check:
    """Run the rig's control loop (no cameras) for ``seconds`` and judge its rate and jitter."""
    try:
        rig = build_rig(config.without_cameras())
        rig.start()
    except (ConfigError, DeviceError, RuntimeError, OSError) as exc:
        return Check("control loop", FAIL, f"could not start rig {config.name}: {exc}",
                     "do what the message says (and fix any failure above), then run doctor again")
    try:
        time.sleep(seconds)
        stats = rig.loop.stats()
    finally:
        rig.close()
    target, achieved = stats["target_hz"], stats["achieved_hz"]
    p99, worst = stats["period_p99_ms"] or 0.0, stats["period_max_ms"] or 0.0
    period_ms = 1e3 / target
    detail = (f"{achieved:.1f} Hz of {target:.0f} Hz over {seconds:.0f} s, period p99 {p99:.1f} ms "
              f"(max {worst:.1f}), {stats['overruns']} overruns in {stats['ticks']} ticks")
    if stats["kill"]["latched"]:
        return Check("control loop", FAIL, f"{detail}; the robot was stopped: {stats['kill']['reason']}", BUSY_FIX)
    if achieved < MIN_RATE_FRACTION * target:
        return Check("control loop", FAIL, f"{detail}: below {MIN_RATE_FRACTION:.0%} of its rate", BUSY_FIX)
    if p99 > MAX_P99_PERIODS * period_ms or stats["overruns"] > MAX_OVERRUN_FRACTION * stats["ticks"]:
        return Check("control loop", WARN, f"{detail}: jittery", BUSY_FIX)
    return Check("control loop", OK, detail)
