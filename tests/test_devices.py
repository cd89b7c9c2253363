"""Device discovery on a fake /sys and /dev tree, with emulated servo buses on pseudo-terminals."""

import json
import sys
from types import SimpleNamespace

import pytest

from drivers.servo.emulator import ServoEmulator
from drivers.discovery import _ranges, discover, probe_servos, realsense, serial_ports, spacemice, video_devices


def write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def tree(tmp_path):
    """What a machine with a webcam, two SpaceMice, a mouse and one servo adapter exposes."""
    sys_root, dev = tmp_path / "sys", tmp_path / "dev"
    hidraw = sys_root / "class/hidraw"
    write(hidraw / "hidraw0/device/uevent", "DRIVER=hid-generic\nHID_ID=0003:0000046D:0000C52B\n")  # a mouse
    write(hidraw / "hidraw3/device/uevent", "DRIVER=hid-generic\nHID_ID=0003:0000256F:0000C635\n")
    write(hidraw / "hidraw12/device/uevent", "HID_ID=0005:0000256F:0000C638\nHID_NAME=SpaceMouse Pro\n")
    write(dev / "hidraw3")  # hidraw12 has no node we may open: no udev rule yet
    v4l = sys_root / "class/video4linux"
    for i, name in enumerate(["HD Webcam: HD Webcam", "HD Webcam: HD Webcam"]):
        write(v4l / f"video{i}/name", name)
        write(v4l / f"video{i}/index", str(i))
        write(dev / f"video{i}")
    (dev / "serial/by-id").mkdir(parents=True)
    write(dev / "ttyACM0")
    (dev / "serial/by-id/usb-1a86_USB_Single_Serial_5A7A-if00").symlink_to(dev / "ttyACM0")
    return sys_root, dev


def test_spacemice_by_hid_id_with_permission_notes(tree):
    sys_root, dev = tree
    mice = spacemice(str(sys_root / "class/hidraw"), str(dev))
    assert [(m.path, m.description) for m in mice] == [
        (str(dev / "hidraw3"), "SpaceMouse Compact"),
        (str(dev / "hidraw12"), "SpaceMouse Pro Wireless (Bluetooth) (no permission: install the udev rule "
                                "from docs/hardware.md)"),
    ]


def test_video_nodes_with_names_and_the_metadata_node_marked(tree):
    sys_root, dev = tree
    vids = video_devices(str(dev), str(sys_root / "class/video4linux"))
    assert [v.path for v in vids] == [str(dev / "video0"), str(dev / "video1")]
    assert vids[0].description == "HD Webcam: HD Webcam"
    assert "metadata" in vids[1].description


def test_serial_ports_named_by_id_and_by_what_answers(tree):
    _, dev = tree
    ports = serial_ports(str(dev), probe=lambda port: "feetech servos 1-6 at 1000000 baud")
    assert [(p.path, p.description) for p in ports] == [
        (str(dev / "ttyACM0"), "usb-1a86_USB_Single_Serial_5A7A-if00: feetech servos 1-6 at 1000000 baud")]
    assert serial_ports(str(dev))[0].description == "usb-1a86_USB_Single_Serial_5A7A-if00"


@pytest.mark.parametrize("protocol, ids, answer", [
    ("feetech", [1, 2, 3, 4, 5, 6], "feetech servos 1-6 at 1000000 baud"),
    ("dynamixel", [1, 2, 3, 5, 7], "dynamixel servos 1-3, 5, 7 at 57600 baud"),
])
def test_probe_pings_each_protocol_on_a_real_serial_port(protocol, ids, answer):
    with ServoEmulator(protocol, ids) as emulator:
        assert probe_servos(emulator.path, timeout=0.05) == answer


def test_probe_of_a_silent_port_and_of_one_that_cannot_open(tmp_path):
    with ServoEmulator("feetech", []) as emulator:
        assert probe_servos(emulator.path, ids=[1, 2], timeout=0.01) is None
    assert "not found" in probe_servos(str(tmp_path / "ttyUSB9"))


def test_discovery_wires_the_probe_to_the_ports(tree):
    sys_root, dev = tree
    with ServoEmulator("feetech", [1, 2]) as emulator:
        (dev / "ttyUSB0").symlink_to(emulator.path)
        report = discover(str(dev), str(sys_root), probe=lambda p: probe_servos(p, timeout=0.05),
                          rs=SimpleNamespace(context=lambda: SimpleNamespace(query_devices=lambda: [])))
    usb = [d for d in report.devices if d.path == str(dev / "ttyUSB0")]
    assert usb and usb[0].description == "USB serial adapter: feetech servos 1-2 at 1000000 baud"


class FakeRealSense:
    """The part of pyrealsense2 discovery uses, with one D435 on a USB 2 port."""

    camera_info = SimpleNamespace(serial_number="serial", name="name", usb_type_descriptor="usb")

    def context(self):
        info = {"serial": "233722070367", "name": "Intel RealSense D435", "usb": "2.1"}
        device = SimpleNamespace(get_info=info.get, supports=lambda key: key in info)
        return SimpleNamespace(query_devices=lambda: [device])


def test_realsense_by_serial_with_a_usb_speed_warning():
    from drivers.discovery import Report

    report = Report()
    found = realsense(report, FakeRealSense())
    assert [(f.path, f.description) for f in found] == [
        ("233722070367", "Intel RealSense D435, USB 2.1 (slow port: use USB 3)")]
    assert report.notes == []


def test_missing_realsense_library_is_a_note(monkeypatch, tree):
    sys_root, dev = tree
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)
    report = discover(str(dev), str(sys_root), probe=None)
    assert any("pip install pyrealsense2" in n for n in report.notes)
    text = report.text()
    for title in ("Cameras (V4L2/OpenCV):", "RealSense:\n  none found", "SpaceMice:", "Serial ports:"):
        assert title in text
    assert "note: RealSense" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert {d["kind"] for d in data["devices"]} == {"video", "spacemouse", "serial"}


def test_the_real_library_lists_without_error():
    from drivers.discovery import Report

    report = Report()
    assert all(f.kind == "realsense" for f in realsense(report)) and report.notes == []


def test_ranges():
    assert _ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
    assert _ranges([4]) == "4"
