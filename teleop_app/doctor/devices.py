"""Doctor checks of device access: the rig's serial ports, SpaceMouse hidraw nodes, and the udev rules.

Whether this user may open a node is asked of the kernel (``os.access``, which
also honours the ACLs ``TAG+="uaccess"`` adds); the node's owner, group and mode
only explain a refusal and choose its fix. The udev rule lines are the ones
docs/hardware.md tells people to install (a test keeps the two equal). Every
root directory is a parameter so tests can point the checks at a fake tree. No threads.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Sequence
from pathlib import Path

from drivers.discovery import spacemice
from teleop_app.doctor.result import FAIL, OK, Check, needed

RULE_DIRS = ("/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d")
SPACEMOUSE_RULES = (
    'KERNEL=="hidraw*", ATTRS{idVendor}=="256f", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
    'KERNEL=="hidraw*", ATTRS{idVendor}=="046d", ATTRS{idProduct}=="c626|c627|c62b", MODE="0660", '
    'GROUP="plugdev", TAG+="uaccess"',
    'KERNEL=="hidraw*", KERNELS=="0005:256F:*", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
)
REALSENSE_RULES = (
    'SUBSYSTEMS=="usb", ATTRS{idVendor}=="8086", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
    'KERNEL=="video*", ATTRS{idVendor}=="8086", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
    'KERNEL=="iio*", ATTRS{idVendor}=="8086", MODE="0660", GROUP="plugdev", TAG+="uaccess"',
)
SERVO_RULES = (
    'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="55d3", MODE="0660", GROUP="dialout"',
    'SUBSYSTEM=="tty", ATTRS{idVendor}=="1a86", ATTRS{idProduct}=="7523", MODE="0660", GROUP="dialout"',
    'SUBSYSTEM=="tty", ATTRS{idVendor}=="0403", MODE="0660", GROUP="dialout"',
    'ACTION=="add", SUBSYSTEM=="usb-serial", DRIVER=="ftdi_sio", ATTR{latency_timer}="1"',
)
RELOAD = "sudo udevadm control --reload-rules && sudo udevadm trigger"


def install_rules_command(lines: Sequence[str], file_name: str) -> str:
    """One shell command that writes ``lines`` to /etc/udev/rules.d/``file_name`` and reloads udev."""
    quoted = " ".join(f"'{line}'" for line in lines)
    return f"printf '%s\\n' {quoted} | sudo tee /etc/udev/rules.d/{file_name} >/dev/null && {RELOAD}"


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def access_problem(path: str) -> tuple[str, str | None] | None:
    """None when this user may read and write ``path``; else what is wrong and the group that would grant it."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{path} cannot be read ({exc.strerror})", None
    if os.access(path, os.R_OK | os.W_OK):
        return None
    group = _group_name(st.st_gid)
    why = f"{path}: no read/write permission (owner {_owner_name(st.st_uid)}:{group}, mode {stat.filemode(st.st_mode)})"
    grants = st.st_mode & (stat.S_IRGRP | stat.S_IWGRP) == (stat.S_IRGRP | stat.S_IWGRP)
    user = pwd.getpwuid(os.getuid()).pw_name
    try:
        listed = user in grp.getgrgid(st.st_gid).gr_mem
    except KeyError:
        listed = False
    if grants and listed and st.st_gid not in os.getgroups():
        why += f"; you were added to {group} after this login"
    return why, group if grants else None


def serial_port(label: str, port: str) -> Check:
    """A serial device of the rig exists and this user may open it."""
    name = f"serial {label}"
    if not os.path.exists(port):
        return Check(name, FAIL, f"{port} not found: the adapter is unplugged or the rig's port is wrong",
                     "teleop-app devices   # lists the ports; put the /dev/serial/by-id/ path in the rig file")
    problem = access_problem(port)
    if problem is None:
        real = os.path.realpath(port)
        return Check(name, OK, f"{port}" + (f" ({real})" if real != port else "") + " readable and writable")
    why, group = problem
    if group is not None and why.endswith("after this login"):
        return Check(name, FAIL, why, "log out and back in (or reboot); `groups` must list " + group)
    if group is not None:
        return Check(name, FAIL, why, f"sudo usermod -aG {group} $USER   # then log out and back in")
    # no group may open it: the servo rule gives it to dialout
    return Check(name, FAIL, why, install_rules_command(SERVO_RULES, "99-teleop-app-servos.rules")
                 + " && sudo usermod -aG dialout $USER   # then replug it, log out and back in")


def rule_files(vendor: str, kernel: str | None = None, rule_dirs: Sequence[str] = RULE_DIRS) -> list[str]:
    """Rule files with an active line matching USB ``vendor`` (hex, any case) and, if given, ``kernel``."""
    found = []
    for folder in rule_dirs:
        for path in sorted(Path(folder).glob("*.rules")):
            try:
                lines = path.read_text(errors="replace").lower().splitlines()
            except OSError:
                continue
            if any(not line.lstrip().startswith("#") and vendor.lower() in line
                   and (kernel is None or kernel in line) for line in lines):
                found.append(str(path))
    return found


def udev_rule(device: str, is_needed: bool, rule_dirs: Sequence[str] = RULE_DIRS) -> Check:
    """The udev rule that gives users access to a SpaceMouse (``device="spacemouse"``) or RealSense is installed."""
    if device == "spacemouse":
        found = rule_files("256f", "hidraw", rule_dirs)
        lines, file_name = SPACEMOUSE_RULES, "99-teleop-app-spacemouse.rules"
    else:
        found = rule_files("8086", None, rule_dirs)
        lines, file_name = REALSENSE_RULES, "99-teleop-app-realsense.rules"
    name = f"{device} udev rule"
    if found:
        return Check(name, OK, f"in {', '.join(found)}")
    # root opens the device without the rule, so the rig runs; other users would not
    status = needed(is_needed and os.geteuid() != 0)
    return Check(name, status, f"no {device} rule in {' or '.join(rule_dirs)}: only root can open the device",
                 install_rules_command(lines, file_name))


def spacemouse_nodes(sys_root: str = "/sys", dev_root: str = "/dev",
                     rule_dirs: Sequence[str] = RULE_DIRS) -> Check:
    """A SpaceMouse is attached and this user may open its ``/dev/hidraw*`` node."""
    mice = spacemice(os.path.join(sys_root, "class", "hidraw"), dev_root)
    if not mice:
        return Check("spacemouse device", FAIL, "no SpaceMouse attached (none among /sys/class/hidraw)",
                     "plug it in (a wireless one: its receiver), then: teleop-app devices")
    for mouse in mice:
        problem = access_problem(mouse.path)
        if problem is not None:
            fix = (f"{RELOAD}   # then replug it; over ssh: sudo usermod -aG plugdev $USER, log in again"
                   if rule_files("256f", "hidraw", rule_dirs)
                   else install_rules_command(SPACEMOUSE_RULES, "99-teleop-app-spacemouse.rules"))
            return Check("spacemouse device", FAIL, problem[0], fix)
    return Check("spacemouse device", OK, ", ".join(f"{m.path} ({m.description})" for m in mice))
