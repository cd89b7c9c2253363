"""What hardware is attached: cameras, RealSense units, SpaceMice and servo buses.

Discovery reads the operating system (sysfs, /dev) where it can, so it works
without any vendor library; a library that is needed for a kind of device and
missing is reported as one line naming the package to install. Serial ports
are pinged for servos (Feetech at 1 Mbaud, Dynamixel 2.0 at 57600 and 1 Mbaud)
through :class:`drivers.servo.bus.ServoBus`, so a port is named by what answers
on it. Every root directory and the servo probe are parameters, so tests point
discovery at a fake tree.
"""

from __future__ import annotations

import ctypes.util
import glob
import importlib
import importlib.util
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from drivers.base import DeviceError

# 3Dconnexion vendor ids (new and Logitech-era) with the SpaceMouse product ids we know.
SPACEMOUSE_IDS: dict[tuple[int, int], str] = {
    (0x256F, 0xC635): "SpaceMouse Compact",
    (0x256F, 0xC62E): "SpaceMouse Wireless",
    (0x256F, 0xC63A): "SpaceMouse Wireless",
    (0x256F, 0xC632): "SpaceMouse Pro Wireless",
    (0x256F, 0xC638): "SpaceMouse Pro Wireless (Bluetooth)",
    (0x256F, 0xC633): "SpaceMouse Enterprise",
    (0x256F, 0xC652): "3Dconnexion Universal Receiver",
    (0x256F, 0xC641): "SpaceMouse USB",
    (0x046D, 0xC626): "SpaceNavigator",
    (0x046D, 0xC627): "SpaceExplorer",
    (0x046D, 0xC62B): "SpaceMouse Pro",
}
SERVO_PROBES = (("feetech", 1_000_000), ("dynamixel", 57_600), ("dynamixel", 1_000_000))
SERVO_IDS = range(1, 8)  # SO-101 and Koch arms use 1-6, GELLO arms up to 7
UDEV_NOTE = "(no permission: install the udev rule from docs/hardware.md)"

Probe = Callable[[str], str | None]


@dataclass
class Found:
    kind: str  # "video", "realsense", "spacemouse", "serial"
    path: str
    description: str


@dataclass
class Report:
    devices: list[Found] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # missing libraries, permissions

    def to_dict(self) -> dict:
        return {"devices": [asdict(d) for d in self.devices], "notes": self.notes}

    def text(self) -> str:
        lines = []
        for kind, title in (("video", "Cameras (V4L2/OpenCV)"), ("realsense", "RealSense"),
                            ("spacemouse", "SpaceMice"), ("serial", "Serial ports")):
            found = [d for d in self.devices if d.kind == kind]
            lines.append(f"{title}:")
            lines += [f"  {d.path}  {d.description}" for d in found] or ["  none found"]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _usable(path: str) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def video_devices(dev_root: str = "/dev", sys_root: str = "/sys/class/video4linux") -> list[Found]:
    """``/dev/video*`` with their V4L2 names; a UVC camera's second node carries metadata, not pictures."""
    found = []
    for path in sorted(glob.glob(os.path.join(dev_root, "video*")), key=lambda p: (len(p), p)):
        node = Path(sys_root) / Path(path).name
        description = _read(node / "name") or "video device"
        if _read(node / "index") not in ("", "0"):
            description += " (secondary node, usually metadata: use the camera's first node)"
        if not _usable(path):
            description += " (no permission: add yourself to the video group)"
        found.append(Found("video", path, description))
    return found


def spacemice(sys_root: str = "/sys/class/hidraw", dev_root: str = "/dev") -> list[Found]:
    """SpaceMice by USB/Bluetooth ids from sysfs (no HID library or permission needed to list them)."""
    found = []
    for node in sorted(Path(sys_root).glob("hidraw*"), key=lambda p: (len(p.name), p.name)):
        for line in _read(node / "device" / "uevent").splitlines():
            if not line.startswith("HID_ID="):
                continue
            _, vendor, product = line.split("=", 1)[1].split(":")
            name = SPACEMOUSE_IDS.get((int(vendor, 16), int(product, 16)))
            if name is not None:
                path = os.path.join(dev_root, node.name)
                found.append(Found("spacemouse", path, name if _usable(path) else f"{name} {UDEV_NOTE}"))
    return found


def realsense(report: Report, rs: Any = None) -> list[Found]:
    """RealSense cameras by serial through pyrealsense2 (``rs``: the module, imported here by default)."""
    if rs is None:
        try:
            rs = importlib.import_module("pyrealsense2")
        except ImportError:
            report.notes.append("RealSense: cannot list cameras without pyrealsense2: pip install pyrealsense2")
            return []
    try:
        found = []
        for dev in rs.context().query_devices():
            info = rs.camera_info
            serial, name = dev.get_info(info.serial_number), dev.get_info(info.name)
            usb = dev.get_info(info.usb_type_descriptor) if dev.supports(info.usb_type_descriptor) else ""
            speed = f", USB {usb}" + (" (slow port: use USB 3)" if usb.startswith("2") else "") if usb else ""
            found.append(Found("realsense", serial, f"{name}{speed}"))
        return found
    except RuntimeError as exc:
        report.notes.append(f"RealSense: cannot query cameras ({exc}); is libusb-1.0-0 installed?")
        return []


def serial_ports(dev_root: str = "/dev", probe: Probe | None = None) -> list[Found]:
    """USB serial adapters, named by their ``/dev/serial/by-id`` link and by the servos that answer on them."""
    found = []
    by_id = {os.path.realpath(p): os.path.basename(p) for p in glob.glob(os.path.join(dev_root, "serial/by-id/*"))}
    for pattern in ("ttyUSB*", "ttyACM*"):
        for path in sorted(glob.glob(os.path.join(dev_root, pattern))):
            description = by_id.get(os.path.realpath(path), "USB serial adapter")
            answer = probe(path) if probe is not None else None
            found.append(Found("serial", path, f"{description}: {answer}" if answer else description))
    return found


def probe_servos(port: str, ids: Iterable[int] = SERVO_IDS, timeout: float = 0.02) -> str | None:
    """What answers a ping on ``port``, e.g. ``"feetech servos 1-6 at 1000000 baud"``; None if nothing does.

    Tries each of :data:`SERVO_PROBES` in turn and stops at the first that gets
    an answer. A port that cannot be opened says why (in use, no permission).
    """
    from drivers.servo.bus import ServoBus

    ids = list(ids)
    for protocol, baud in SERVO_PROBES:
        bus = ServoBus(port, protocol, baud, timeout=timeout, retries=0)
        try:
            bus.open()
        except DeviceError as exc:
            return f"cannot ping servos ({exc})"
        try:
            answered = []
            for servo_id in ids:
                try:
                    bus.ping(servo_id)
                except DeviceError:
                    continue
                answered.append(servo_id)
        finally:
            bus.close()
        if answered:
            return f"{protocol} servos {_ranges(answered)} at {baud} baud"
    return None


def _ranges(ids: list[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3, 5"``."""
    runs: list[list[int]] = []
    for i in ids:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def discover(dev_root: str = "/dev", sys_root: str = "/sys", probe: Probe | None = probe_servos,
             rs: Any = None) -> Report:
    """Everything attached, with notes for what cannot be listed or used; ``probe=None`` skips the servo pings."""
    report = Report()
    report.devices += video_devices(dev_root, os.path.join(sys_root, "class", "video4linux"))
    report.devices += realsense(report, rs)
    mice = spacemice(os.path.join(sys_root, "class", "hidraw"), dev_root)
    report.devices += mice
    if mice and importlib.util.find_spec("pyspacemouse") is None:
        report.notes.append("SpaceMouse: the driver needs pyspacemouse: pip install pyspacemouse")
    if mice and ctypes.util.find_library("hidapi-hidraw") is None:
        report.notes.append("SpaceMouse: the hidapi library is missing: sudo apt install libhidapi-hidraw0")
    report.devices += serial_ports(dev_root, probe)
    return report
