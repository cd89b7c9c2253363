"""What hardware is attached: cameras, RealSense units, SpaceMice and serial ports.

Discovery reads the operating system (sysfs, /dev) where it can, so it works
without any vendor library; a library that is needed for a kind of device and
missing is reported as one line naming the package to install.
"""

from __future__ import annotations

import glob
import importlib
import importlib.util
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

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


def video_devices(dev_root: str = "/dev", sys_root: str = "/sys/class/video4linux") -> list[Found]:
    found = []
    for path in sorted(glob.glob(os.path.join(dev_root, "video*")), key=lambda p: (len(p), p)):
        name = _read(Path(sys_root) / Path(path).name / "name") or "video device"
        found.append(Found("video", path, name))
    return found


def spacemice(sys_root: str = "/sys/class/hidraw") -> list[Found]:
    """SpaceMice by USB ids from sysfs (no HID library or permission needed to list them)."""
    found = []
    for node in sorted(Path(sys_root).glob("hidraw*")):
        uevent = _read(node / "device" / "uevent")
        for line in uevent.splitlines():
            if line.startswith("HID_ID="):
                _, vendor, product = line.split("=", 1)[1].split(":")
                key = (int(vendor, 16), int(product, 16))
                if key in SPACEMOUSE_IDS:
                    access = "" if os.access(f"/dev/{node.name}", os.R_OK | os.W_OK) else \
                        " (no permission: install the udev rule from docs/hardware.md)"
                    found.append(Found("spacemouse", f"/dev/{node.name}", SPACEMOUSE_IDS[key] + access))
    return found


def serial_ports(dev_root: str = "/dev") -> list[Found]:
    found = []
    by_id = {os.path.realpath(p): os.path.basename(p) for p in glob.glob(os.path.join(dev_root, "serial/by-id/*"))}
    for pattern in ("ttyUSB*", "ttyACM*"):
        for path in sorted(glob.glob(os.path.join(dev_root, pattern))):
            found.append(Found("serial", path, by_id.get(os.path.realpath(path), "USB serial adapter")))
    return found


def realsense(report: Report) -> list[Found]:
    try:
        rs = importlib.import_module("pyrealsense2")
    except ImportError:
        report.notes.append("RealSense: library missing: pip install pyrealsense2")
        return []
    try:
        ctx = rs.context()
        found = []
        for dev in ctx.query_devices():
            serial = dev.get_info(rs.camera_info.serial_number)
            name = dev.get_info(rs.camera_info.name)
            found.append(Found("realsense", serial, name))
        return found
    except RuntimeError as exc:
        report.notes.append(f"RealSense: cannot query devices ({exc}); is libusb-1.0-0 installed?")
        return []


def discover() -> Report:
    report = Report()
    report.devices += video_devices()
    report.devices += realsense(report)
    report.devices += spacemice()
    if importlib.util.find_spec("pyspacemouse") is None:
        report.notes.append("SpaceMouse: library missing: pip install pyspacemouse (and apt-get install libhidapi-hidraw0)")
    report.devices += serial_ports()
    return report
