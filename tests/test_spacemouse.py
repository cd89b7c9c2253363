"""SpaceMouse driver on emulated HID devices: real report bytes, parsed by the real pyspacemouse.

The emulated device stands where easyhid/hidapi stand: it queues raw HID reports
(id 1: six little-endian int16 axes, id 3: button bitmask, as a SpaceMouse
Wireless sends them) in a 64-report ring like the kernel's hidraw buffer, and
a producer thread can send them at 200 Hz.
"""

import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from easyhid import HIDException

import drivers.spacemouse as spacemouse_module
from drivers import registry
from drivers.base import DeviceError
from drivers.spacemouse import DEVICE_AXES, SpaceMouse, SpaceMouseConfig
from teleop_app.config import load_rig
from teleop_app.rig import build_rig
from teleop_app.modes import Mode
from fake_hid import WIRELESS, Bus, FakeHID, Producer, button_report, motion_report
from waiting import wait_for

RIG = Path(__file__).resolve().parents[1] / "teleop_app" / "rigs" / "sim_spacemouse.toml"


@pytest.fixture
def hid():
    return FakeHID()


@pytest.fixture
def make_mouse(hid):
    made = []

    def make(bus=None, **options) -> SpaceMouse:
        mouse = SpaceMouse(SpaceMouseConfig(**options), hid_enumerate=bus or Bus(hid))
        made.append(mouse)
        mouse.start()
        return mouse

    yield make
    for mouse in made:
        mouse.stop()


def push(mouse: SpaceMouse, hid: FakeHID, *reports: bytes):
    """Send ``reports``, wait until the driver has read them, return what the loop would read."""
    target = mouse.report.seq + len(reports)
    for r in reports:
        hid.send(r)
    assert wait_for(lambda: mouse.report.seq == target), (mouse.report.seq, target)
    return mouse.read()


# -- latency: the reader keeps up -----------------------------------------------------------


def seq_report(n: int) -> bytes:
    return motion_report(x=n % 256, y=n // 256)  # the report's number, readable back from the state


def seq_of(axes: dict[str, float]) -> int:
    return round(axes["x"] * 350) + 256 * round(axes["y"] * 350)


def test_a_30hz_consumer_always_sees_the_newest_report(make_mouse, hid):
    """Each read, once the reader thread has had the CPU, gives the newest report sent.

    The consumer holds the producer still while it looks, and gives the reader thread
    up to a second to parse what the device queued: on a loaded machine the reader may
    be preempted for tens of milliseconds, which no driver can help. A driver that reads
    one report per call never drains the queue; one that keeps an older state is behind.
    """
    mouse = make_mouse()
    producer = Producer(hid, seq_report, rate_hz=200.0)
    behind = []
    try:
        for _ in range(60):  # 2 s at 30 Hz
            time.sleep(1 / 30)
            with producer.pause:
                assert wait_for(lambda: mouse.report.seq == hid.produced, timeout=1.0), \
                    f"{hid.produced - mouse.report.seq} reports never read"
                newest = hid.produced - 1
                state = mouse.read()
            behind.append(newest - seq_of(state.axes))
    finally:
        producer.stop()
    assert hid.produced > 300
    assert max(behind) == 0, behind
    assert wait_for(lambda: mouse.report.seq == hid.produced) and not hid.queue  # the last ones, too


def test_the_same_device_lags_when_read_once_per_frame(hid):
    """The bug the reader thread avoids, shown on the same emulated device and parser."""
    import pyspacemouse

    spec = pyspacemouse.apply_axis_convention(pyspacemouse.get_device_specs()["SpaceMouseWireless"],
                                              pyspacemouse.AxisConvention.HID)
    device = pyspacemouse.SpaceMouseDevice(info=spec, device=hid)
    device.open()
    producer = Producer(hid, seq_report, rate_hz=200.0)
    try:
        for _ in range(30):  # 1 s of one read per 30 Hz frame
            time.sleep(1 / 30)
            state = device.read()
        behind = hid.produced - 1 - seq_of({"x": state.x, "y": state.y})
    finally:
        producer.stop()
    assert behind > 20


# -- mapping -------------------------------------------------------------------------------


def test_default_axes_map_the_hid_frame_to_the_base_frame(make_mouse, hid):
    mouse = make_mouse()
    push_away = push(mouse, hid, motion_report(y=-350))  # HID +y is toward the user
    assert np.allclose(push_away.ee_twist, [0.1, 0, 0, 0, 0, 0])
    right = push(mouse, hid, motion_report(x=350))
    assert np.allclose(right.ee_twist, [0, -0.1, 0, 0, 0, 0])  # base +y is to the left
    lift = push(mouse, hid, motion_report(z=-350))  # HID +z is down
    assert np.allclose(lift.ee_twist, [0, 0, 0.1, 0, 0, 0])
    twist_ccw = push(mouse, hid, motion_report(yaw=-350))
    assert np.allclose(twist_ccw.ee_twist, [0, 0, 0, 0, 0, 0.8])
    tilt = push(mouse, hid, motion_report(pitch=350))  # about HID y = about base -x
    assert np.allclose(tilt.ee_twist, [0, 0, 0, -0.8, 0, 0])
    assert tilt.axes == dict(zip(DEVICE_AXES, [0, 0, 0, 0, 1.0, 0]))
    assert tilt.connected and tilt.t_host == mouse.report.t_host


def test_deadband_rescales_and_full_scale_saturates(make_mouse, hid):
    mouse = make_mouse(deadband=0.1, max_linear_speed=0.2, max_angular_speed=1.5)
    assert not push(mouse, hid, motion_report(x=30, y=-34, roll=20)).ee_twist.any()  # < 0.1 of 350
    half = push(mouse, hid, motion_report(y=-175)).ee_twist  # 0.5 deflection
    assert half[0] == pytest.approx((0.5 - 0.1) / 0.9 * 0.2)
    beyond = push(mouse, hid, motion_report(y=-500, yaw=-400)).ee_twist  # past nominal full scale
    assert beyond[0] == pytest.approx(0.2) and beyond[5] == pytest.approx(1.5)


def test_custom_axis_map_and_signs(make_mouse, hid):
    mouse = make_mouse(axis_map=["x", "y", "z", "none", "none", "yaw"], signs=[1, -1, 1, 1, 1, 2],
                       deadband=0.0)
    state = push(mouse, hid, motion_report(x=35, y=70, z=-105, roll=350, pitch=350, yaw=35))
    assert np.allclose(state.ee_twist, [0.01, -0.02, -0.03, 0, 0, 0.16])


def test_config_is_checked():
    with pytest.raises(ValueError, match="axis_map"):
        SpaceMouseConfig(axis_map=["x", "y", "z", "roll", "pitch", "spin"])
    with pytest.raises(ValueError, match="distinct"):
        SpaceMouseConfig(gripper_button=1, episode_button=1)
    with pytest.raises(ValueError, match="gripper_mode"):
        SpaceMouseConfig(gripper_mode="squeeze")


# -- buttons -------------------------------------------------------------------------------


def test_gripper_toggles_on_each_press_and_episode_button_is_named(make_mouse, hid):
    mouse = make_mouse()
    assert mouse.read().gripper == 1.0
    pressed = push(mouse, hid, button_report(0b01))
    assert pressed.gripper == 0.0 and pressed.buttons == {"gripper"}
    assert push(mouse, hid, button_report(0)).gripper == 0.0  # release keeps it closed
    assert push(mouse, hid, button_report(0b01), button_report(0)).gripper == 1.0
    both = push(mouse, hid, button_report(0b11))
    assert both.buttons == {"gripper", "episode"} and both.gripper == 0.0
    push(mouse, hid, button_report(0))
    assert mouse.presses("gripper") == 3 and mouse.presses("episode") == 1


def test_a_click_between_two_reads_is_counted(make_mouse, hid):
    mouse = make_mouse()
    state = push(mouse, hid, button_report(0b10), button_report(0))  # press and release before a read
    assert "episode" not in state.buttons and mouse.presses("episode") == 1


def test_hold_mode_closes_only_while_held(make_mouse, hid):
    mouse = make_mouse(gripper_mode="hold")
    assert push(mouse, hid, button_report(0b01)).gripper == 0.0
    assert push(mouse, hid, button_report(0)).gripper == 1.0


def test_deadman_gates_motion_and_gripper(make_mouse, hid):
    mouse = make_mouse(deadman_button=1, episode_button=None)
    free = push(mouse, hid, motion_report(y=-350), button_report(0b01))
    assert not free.ee_twist.any() and free.gripper == 1.0  # nothing moves without the deadman
    held = push(mouse, hid, button_report(0b10), motion_report(y=-350))
    assert held.ee_twist[0] == pytest.approx(0.1) and "deadman" in held.buttons
    assert push(mouse, hid, button_report(0b11)).gripper == 0.0


def test_unmapped_buttons_are_reported_by_index(hid):
    pro = FakeHID(ids=(0x256F, 0xC632))  # SpaceMouse Pro Wireless: 15 buttons
    mouse = SpaceMouse(SpaceMouseConfig(gripper_button=5, episode_button=6, kill_button=4),
                       hid_enumerate=Bus(pro))
    mouse.start()
    try:
        # Report 3 of a Pro: BTN_1 and BTN_2 are bits 4 and 5 of byte 2, SHIFT (button 3) bit 0 of byte 4.
        pro.send(bytes([3, 0, 0b0011_0000, 0, 0b0000_0001]) + bytes(8))
        assert wait_for(lambda: mouse.report.seq == pro.produced)
        assert mouse.read().buttons == {"gripper", "episode", "button3"}
    finally:
        mouse.stop()


# -- link loss and unplugging ---------------------------------------------------------------


def test_a_deflection_without_reports_times_out_to_zero(make_mouse, hid):
    mouse = make_mouse(motion_timeout_s=0.3)
    assert push(mouse, hid, motion_report(y=-350)).ee_twist.any()
    assert wait_for(lambda: not mouse.read().ee_twist.any(), timeout=3.0)
    assert mouse.read().connected


def test_unplug_mid_run_stops_motion_at_once_then_reconnects(make_mouse, hid):
    bus = Bus(hid)
    # A long motion timeout: what stops the arm here is the failed read, not the silence.
    mouse = make_mouse(bus=bus, reconnect_interval_s=0.05, motion_timeout_s=10.0)
    producer = Producer(hid, lambda n: motion_report(y=-350), rate_hz=200.0)
    try:
        assert wait_for(lambda: mouse.read().ee_twist.any())
        bus.devices = []
        hid.unplugged = True
        assert wait_for(lambda: not mouse.read().connected)
    finally:
        producer.stop()
    lost = mouse.read()
    assert not lost.connected and not lost.ee_twist.any() and lost.gripper is None
    assert "lost" in mouse.error and "\n" not in mouse.error
    assert wait_for(lambda: "none found" in (mouse.error or ""))  # it keeps trying
    replugged = FakeHID()
    bus.devices = [replugged]
    assert wait_for(lambda: mouse.read().connected)
    assert mouse.error is None and replugged.opened == 1
    assert push(mouse, replugged, motion_report(y=-350)).ee_twist[0] == pytest.approx(0.1)


# -- missing pieces: one line naming the fix --------------------------------------------------


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_library_names_the_package(monkeypatch, hid):
    monkeypatch.setitem(sys.modules, "pyspacemouse", None)
    with pytest.raises(DeviceError) as exc:
        SpaceMouse(SpaceMouseConfig(), hid_enumerate=Bus(hid)).start()
    assert "pip install pyspacemouse" in one_line(exc)


def test_missing_hidapi_names_the_system_package(monkeypatch):
    import easyhid

    class NoLibrary:
        def __init__(self, *args, **kwargs):
            raise AttributeError("cffi library has no function 'hid_enumerate'")

    monkeypatch.setattr(easyhid, "Enumeration", NoLibrary)
    with pytest.raises(DeviceError) as exc:
        SpaceMouse(SpaceMouseConfig()).start()
    assert "apt install libhidapi-hidraw0" in one_line(exc)


def test_no_device_and_no_permission(hid):
    with pytest.raises(DeviceError) as exc:
        SpaceMouse(SpaceMouseConfig(), hid_enumerate=Bus()).start()
    assert "none found" in one_line(exc)
    with pytest.raises(DeviceError) as exc:
        SpaceMouse(SpaceMouseConfig(), hid_enumerate=Bus(FakeHID(refuse_open=True))).start()
    assert "udev rule" in one_line(exc)
    with pytest.raises(DeviceError) as exc:
        SpaceMouse(SpaceMouseConfig(device="SpaceBall"), hid_enumerate=Bus(hid)).start()
    assert "SpaceMouseCompact" in one_line(exc)


def test_device_and_path_pick_the_unit(hid):
    other = FakeHID(ids=(0x256F, 0xC635), path="/dev/hidraw-fake1")  # a Compact
    mouse = SpaceMouse(SpaceMouseConfig(path="/dev/hidraw-fake1"), hid_enumerate=Bus(hid, other))
    mouse.start()
    mouse.stop()
    assert (other.opened, hid.opened) == (1, 0)
    mouse = SpaceMouse(SpaceMouseConfig(device="SpaceMouseWireless"), hid_enumerate=Bus(other, hid))
    mouse.start()
    mouse.stop()
    assert hid.opened == 1


# -- in a rig -------------------------------------------------------------------------------


def test_rig_file_drives_the_sim_arm_forward(monkeypatch, hid):
    monkeypatch.setattr(spacemouse_module, "default_hid_enumerate", Bus(hid))
    rig = build_rig(load_rig(RIG).without_cameras(), active_input="spacemouse")
    assert isinstance(rig.inputs["spacemouse"], SpaceMouse)
    assert [c.type for c in load_rig(RIG).cameras] == ["sim", "sim"]
    with rig:
        start = rig.robot.read().ee_pos.copy()
        rig.modes.set_mode(Mode.TELEOP)
        producer = Producer(hid, lambda n: motion_report(y=-350), rate_hz=100.0)  # push away: +x
        try:
            assert wait_for(lambda: rig.robot.read().ee_pos[0] - start[0] > 0.02, timeout=10.0)
        finally:
            producer.stop()
        moved = rig.robot.read().ee_pos - start
    assert abs(moved[1]) < 0.5 * moved[0]


def test_registry_builds_it_without_hardware():
    device = registry.create("input", "spacemouse", {"name": "sm", "gripper_mode": "hold"})
    assert isinstance(device, SpaceMouse) and not device.read().connected
