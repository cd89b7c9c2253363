"""The servo bus over a real pseudo-terminal against emulated servos, for both wire protocols."""

import errno
import sys
import threading

import pytest
import serial

from drivers.base import DeviceError
from drivers.servo import dynamixel, feetech
from drivers.servo.bus import ServoBus
from drivers.servo.emulator import ServoEmulator
from drivers.servo.protocol import SYNC_READ

PROTOCOLS = ["feetech", "dynamixel"]
IDS = [1, 2, 3, 4, 5, 6]
MODEL = {"feetech": (feetech.MODEL_ADDR, feetech.MODEL_STS3215), "dynamixel": (dynamixel.MODEL_ADDR, dynamixel.MODEL_XL330_M288)}


@pytest.fixture(params=PROTOCOLS)
def emu(request):
    emulator = ServoEmulator(request.param, IDS)
    yield emulator
    emulator.unplug()


@pytest.fixture
def bus(emu):
    b = ServoBus(emu.path, emu.protocol.name, timeout=0.05, retries=2)
    b.open()
    yield b
    b.close()


def test_ping_read_write_round_trip(emu, bus):
    for servo_id in IDS:
        bus.ping(servo_id)
    addr, model = MODEL[emu.protocol.name]
    assert bus.read(4, addr, 2) == model
    bus.write(4, emu.protocol.torque_addr, 1, 1)
    assert emu.torque(4) and not emu.torque(3)
    assert bus.read(4, emu.protocol.torque_addr, 1) == 1


def test_sync_read_and_sync_write_positions(emu, bus):
    emu.set_positions({1: 100, 2: 4000, 3: 2048, 4: 0, 5: 1234, 6: 3071})
    assert bus.read_positions(IDS) == {1: 100, 2: 4000, 3: 2048, 4: 0, 5: 1234, 6: 3071}
    assert emu.count(SYNC_READ) == 1  # one request for all six servos
    bus.set_torque(IDS, True)
    bus.write_goals({1: 1500, 3: 2600, 6: 10})
    goals = {}
    while goals != {1: 1500, 3: 2600, 6: 10}:  # the sync write has no reply: the next exchange orders it
        bus.ping(1)
        goals = {i: emu.goal(i) for i in (1, 3, 6)}
    assert emu.position(3) == 2600  # a torqued emulated servo is at its goal
    assert bus.read_positions([1, 3]) == {1: 1500, 3: 2600}


def test_negative_positions_survive_each_encoding(emu, bus):
    emu.set_position(2, -300)  # Feetech: sign-magnitude bit 15; Dynamixel: 32-bit two's complement
    assert bus.read_positions([2]) == {2: -300}


def test_a_silent_servo_is_a_clear_error(emu, bus):
    emu.silent.add(3)
    with pytest.raises(DeviceError) as err:
        bus.ping(3)
    assert str(err.value) == f"servo 3 on {emu.path} did not answer (timeout 50 ms): check power and the ID"
    emu.silent.add(5)
    with pytest.raises(DeviceError, match=r"servos 3, 5 on .* did not answer"):
        bus.read_positions(IDS)
    assert bus.stats["timeouts"] == 6  # 3 attempts each
    emu.silent.clear()
    assert len(bus.read_positions(IDS)) == 6  # the bus is usable again


def test_dropped_and_corrupted_replies_are_retried(emu, bus):
    emu.set_position(2, 777)
    emu.drop_replies(1)
    assert bus.read_positions([2]) == {2: 777}
    emu.corrupt_replies(2)
    assert bus.read_positions(IDS)[2] == 777
    assert bus.stats["corrupt"] >= 1
    assert bus.stats["retries"] >= 2


def test_corruption_that_never_stops_names_the_check_and_the_baud_rate(emu, bus):
    emu.corrupt_replies(100)
    with pytest.raises(DeviceError) as err:
        bus.ping(1)
    check = "checksum" if emu.protocol.name == "feetech" else "CRC"
    assert str(err.value) == (f"replies on {emu.path} failed their {check} 3 times in a row: "
                              f"check the wiring and that every servo runs at {bus.baud} baud")


def test_garbage_before_a_reply_is_skipped(emu, bus):
    emu.set_position(4, 3000)
    # noise, a fake header with a huge length, and a stray half packet before the real reply
    emu.inject_garbage(b"\x00\x55" + emu.protocol.header + b"\x01\xff\xff" + emu.protocol.header[:2])
    assert bus.read_positions([4]) == {4: 3000}
    assert bus.stats["garbage_bytes"] > 0


def test_late_replies_within_the_timeout_are_waited_for(emu):
    emu.latency = 0.01
    with ServoBus(emu.path, emu.protocol.name, timeout=0.5) as b:
        b.ping(1)
    emu.latency = 0.3
    with ServoBus(emu.path, emu.protocol.name, timeout=0.02, retries=0) as b, pytest.raises(DeviceError, match="did not answer"):
        b.ping(1)


def test_dynamixel_refusal_is_reported_not_retried():
    with ServoEmulator("dynamixel", IDS) as emu, ServoBus(emu.path, "dynamixel", timeout=0.05) as b:
        emu.set_error(2, 4)
        with pytest.raises(DeviceError) as err:
            b.read(2, dynamixel.PRESENT_POSITION, 4)
        assert str(err.value) == f"servo 2 on {emu.path} refused a read of register 132: data range error"
        assert b.stats["retries"] == 0


@pytest.mark.parametrize("protocol,error,text", [
    ("feetech", 0x20, "overload"),
    ("feetech", 0x04 | 0x01, "input voltage out of range, overheat"),
    ("dynamixel", 0x80, "hardware error (see register 70); the servo needs a reboot"),
])
def test_hardware_alarms_keep_data_and_are_shown(protocol, error, text):
    with ServoEmulator(protocol, IDS) as emu, ServoBus(emu.path, protocol, timeout=0.05) as b:
        emu.set_position(3, 1111)
        emu.set_error(3, error)
        assert b.read_positions(IDS)[3] == 1111
        assert b.alerts == {3: text}
        emu.set_error(3, 0)
        b.read_positions(IDS)
        assert b.alerts == {}


def test_unplugged_adapter_is_one_line_and_stays_an_error(emu, bus):
    bus.read_positions(IDS)
    emu.unplug()
    with pytest.raises(DeviceError) as err:
        bus.read_positions(IDS)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"servo bus on {emu.path} was disconnected (")
    assert message.endswith("check the USB cable and power, then `teleop-app devices`")
    assert not bus.is_open
    with pytest.raises(DeviceError, match="was disconnected"):
        bus.write_goals({1: 2048})
    with pytest.raises(DeviceError) as err:
        bus.open()
    assert str(err.value) == f"serial port {emu.path} not found: run `teleop-app devices` to list serial ports"


def test_port_missing_in_use_and_no_permission(tmp_path, monkeypatch):
    with pytest.raises(DeviceError, match=r"serial port .*/ttyNOPE not found: run `teleop-app devices`"):
        ServoBus(str(tmp_path / "ttyNOPE"), "feetech").open()
    with ServoEmulator("feetech", IDS) as emu, ServoBus(emu.path, "feetech"):
        with pytest.raises(DeviceError, match="is in use by another program"):
            ServoBus(emu.path, "feetech").open()

    def denied(*args, **kwargs):
        raise serial.SerialException(errno.EACCES, "could not open port /dev/ttyACM0: [Errno 13] Permission denied")

    monkeypatch.setattr(serial, "Serial", denied)
    with pytest.raises(DeviceError) as err:
        ServoBus("/dev/ttyACM0", "feetech").open()
    assert "dialout group" in str(err.value) and "udev rule" in str(err.value)


def test_missing_pyserial_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "serial", None)
    with pytest.raises(DeviceError, match="pip install pyserial"):
        ServoBus("/dev/ttyACM0", "feetech").open()


def test_unknown_protocol():
    with pytest.raises(ValueError, match="unknown servo protocol 'herkulex'"):
        ServoBus("/dev/ttyACM0", "herkulex")


def test_threads_share_one_bus(emu, bus):
    emu.set_positions({i: 100 * i for i in IDS})
    errors = []

    def hammer(servo_id):
        try:
            for _ in range(30):
                assert bus.read_positions([servo_id]) == {servo_id: 100 * servo_id}
                assert bus.read(servo_id, emu.protocol.torque_addr, 1) == 0
        except Exception as exc:  # collected: an assert in a thread would not fail the test
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
