"""``teleop-app doctor``: can this machine run this rig? One check per thing it needs, each with its fix.

:func:`run` picks the checks from the rig file (a serial port check per
``port`` option, the SpaceMouse and RealSense checks when the rig uses them, EGL
when it has sim cameras) and adds the general ones; each is a small function in
:mod:`.system`, :mod:`.devices`, :mod:`.disk` or :mod:`.loop_trial` returning a
:class:`~teleop_app.doctor.result.Check`. A check of something the rig does not
use can only warn, so :func:`rig_can_run` is False exactly when a needed check
failed. Plain Python, no Qt; the checks run one after another on the caller's
thread (the loop trial starts the rig's own loop thread for a few seconds).
"""

from __future__ import annotations

from pathlib import Path

from teleop_app.config import RigConfig
from teleop_app.doctor import devices, disk, system
from teleop_app.doctor.loop_trial import loop_trial
from teleop_app.doctor.result import FAIL, Check

DEFAULT_DATASET = Path("~/teleop-data/demos")  # the window's default dataset folder (ui/app.py)

__all__ = ["DEFAULT_DATASET", "rig_can_run", "run", "serial_ports"]


def serial_ports(config: RigConfig) -> list[tuple[str, str]]:
    """(device name, port) of every rig device with a ``port`` option (follower and leader arms)."""
    specs = [config.robot, *config.cameras, *config.inputs]
    return [(spec.name, str(spec.options["port"])) for spec in specs if "port" in spec.options]


def run(config: RigConfig, dataset: Path = DEFAULT_DATASET, loop_seconds: float = 3.0) -> list[Check]:
    """Every check for ``config`` and ``dataset``, in the order they are printed."""
    camera_types = {c.type for c in config.cameras}
    input_types = {i.type for i in config.inputs}
    uses_spacemouse, uses_realsense = "spacemouse" in input_types, "realsense" in camera_types
    checks = [
        system.display(),
        system.qt_platform_plugin(),
        system.egl(is_needed="sim" in camera_types),
        system.sdk_library("realsense", "pyrealsense2", uses_realsense),
        system.sdk_library("spacemouse", "pyspacemouse", uses_spacemouse),
    ]
    checks += [devices.serial_port(label, port) for label, port in serial_ports(config)]
    if uses_spacemouse:
        checks += [devices.udev_rule("spacemouse", True), devices.spacemouse_nodes()]
    if uses_realsense:
        checks.append(devices.udev_rule("realsense", True))
    rate = disk.recording_rate(config)
    checks += [disk.free_space(dataset, rate), disk.write_speed(dataset, rate), system.cpu_cores()]
    checks.append(loop_trial(config, loop_seconds))
    return checks


def rig_can_run(checks: list[Check]) -> bool:
    """False when any check failed (only checks of what the rig needs can fail)."""
    return all(c.status != FAIL for c in checks)
