"""The teleop-app command line, run as a user would: real subprocesses."""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from teleop_app import __version__
from drivers.discovery import spacemice, serial_ports, video_devices

BIN = Path(sys.executable).parent / "teleop-app"


def run(*args, timeout=120, env=None):
    env = dict(env if env is not None else os.environ, MUJOCO_GL="egl")
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def test_version_and_window_without_display():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"teleop-app {__version__}"
    no_display = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    for args in ((), ("gui",), ("teleop",)):
        out = run(*args, env=no_display)
        assert out.returncode == 2 and "Traceback" not in out.stderr
        assert "no display" in out.stderr and "teleop-app teleop --headless" in out.stderr


def test_scripted_teleop_lifts_the_cube_and_writes_stats(tmp_path):
    """The acceptance command itself: default rig, both cameras rendering."""
    stats_file = tmp_path / "s.json"
    out = run("teleop", "--headless", "--input", "scripted", "--seconds", "20", "--seed", "3",
              "--stats-json", str(stats_file))
    assert out.returncode == 0, out.stderr
    stats = json.loads(stats_file.read_text())
    assert stats["success"] is True and stats["time_to_success_s"] < 20
    for key in ("target_hz", "achieved_hz", "period_p50_ms", "period_p99_ms", "period_max_ms", "overruns",
                "sections_ms", "kill_latency_ms"):
        assert key in stats
    assert stats["achieved_hz"] > 50 and stats["ticks"] > 1000  # loose; benchmarks/ measures timing
    assert set(stats["cameras"]) == {"front", "wrist"} and all(c["fps"] > 1 for c in stats["cameras"].values())
    assert "task: success" in out.stderr


@pytest.mark.parametrize("args, message", [
    (["teleop", "--headless", "--input", "joystick", "--seconds", "1", "--no-cameras"], "has no input 'joystick'"),
    (["teleop", "--headless", "--rig", "/nope.toml", "--seconds", "1"], "rig file /nope.toml not found"),
    (["gui", "--rig", "/nope.toml"], "rig file /nope.toml not found"),
])
def test_mistakes_get_one_line_errors(args, message):
    out = run(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_devices_lists_what_is_there_without_hardware():
    out = run("devices")
    assert out.returncode == 0 and "Traceback" not in out.stderr
    for title in ("Cameras", "RealSense", "SpaceMice", "Serial ports"):
        assert title in out.stdout
    data = json.loads(run("devices", "--json").stdout)
    assert set(data) == {"devices", "notes"}


def test_device_discovery_reads_sysfs_and_dev(tmp_path):
    """A fake /sys and /dev tree: the discovery code parses what the kernel exposes."""
    node = tmp_path / "sys/hidraw/hidraw3/device"
    node.mkdir(parents=True)
    (node / "uevent").write_text("DRIVER=hid-generic\nHID_ID=0003:0000256F:0000C635\nHID_NAME=3Dconnexion\n")
    other = tmp_path / "sys/hidraw/hidraw0/device"
    other.mkdir(parents=True)
    (other / "uevent").write_text("HID_ID=0003:0000046D:0000C52B\n")
    mice = spacemice(str(tmp_path / "sys/hidraw"))
    assert [(m.path, m.description.split(" (")[0]) for m in mice] == [("/dev/hidraw3", "SpaceMouse Compact")]

    dev = tmp_path / "dev"
    (dev / "serial/by-id").mkdir(parents=True)
    (dev / "ttyACM0").touch()
    (dev / "video0").touch()
    (dev / "serial/by-id/usb-1a86_USB_Single_Serial-if00").symlink_to(dev / "ttyACM0")
    ports = serial_ports(str(dev))
    assert [(p.path, p.description) for p in ports] == [(str(dev / "ttyACM0"), "usb-1a86_USB_Single_Serial-if00")]
    vids = video_devices(str(dev), str(tmp_path / "sys/video4linux"))
    assert [v.path for v in vids] == [str(dev / "video0")]


def test_keyboard_teleop_in_a_terminal(tmp_path):
    """A real pseudo-terminal: held 'r' raises the gripper, 'x' is STOP, 'q' quits."""
    stats_file = tmp_path / "kb.json"
    pid, fd = pty.fork()
    if pid == 0:  # the child becomes teleop-app on the terminal
        os.execve(str(BIN), [str(BIN), "teleop", "--headless", "--input", "keyboard", "--no-cameras",
                             "--seconds", "30", "--stats-json", str(stats_file)], dict(os.environ, MUJOCO_GL="egl"))
    output = bytearray()

    def pump(seconds, key=None):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if key:
                os.write(fd, key)
            ready = select.select([fd], [], [], 0.03)[0]
            if ready:
                try:
                    output.extend(os.read(fd, 4096))
                except OSError:
                    return

    deadline = time.monotonic() + 30
    while b"keys:" not in output and time.monotonic() < deadline:
        pump(0.2)
    pump(1.5, b"r")  # a terminal's key repeat: the key is held
    pump(0.3, b"x")
    pump(0.5)
    os.write(fd, b"q")
    pump(3.0)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0, output.decode(errors="replace")
    stats = json.loads(stats_file.read_text())
    assert stats["kill"]["latched"] and stats["kill"]["reason"] == "STOP key (x)", stats["kill"]
    assert stats["ee_end"][2] > stats["ee_start"][2] + 0.05, (stats["ee_start"], stats["ee_end"],
                                                              stats["safety_counts"], stats["watchdog_trips"])
    assert stats["seconds"] < 25


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_the_window_closes_cleanly_on_ctrl_c_and_sigterm(tmp_path, sig):
    """As its close button does: settings saved, exit 0 (before, SIGTERM killed it and Ctrl+C did nothing)."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MUJOCO_GL="egl", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.Popen([str(BIN), "gui", "--dataset", str(tmp_path / "data")], env=env, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        lines = []  # the offscreen platform writes a warning or two first
        while not any("console open" in line for line in lines) and len(lines) < 20:
            lines.append(proc.stderr.readline())  # printed once the rig runs and the window is up
        assert "console open on rig sim_so101" in lines[-1] and "Ctrl+C" in lines[-1], lines
        proc.send_signal(sig)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    rest = proc.stderr.read()
    assert "Traceback" not in rest, rest
    settings = (tmp_path / "config" / "teleop-app" / "teleop-app.conf").read_text()
    assert "dataset_dir" in settings and str(tmp_path / "data") in settings


def test_an_error_without_a_message_still_says_something(capsys):
    from teleop_app.cli.errors import fail

    assert fail(TimeoutError()) == 2
    assert capsys.readouterr().err == ("teleop-app: TimeoutError (no message): please report this with the "
                                       "command you ran\n")
    assert fail(ValueError("--episodes must be ≥ 1")) == 2
    assert capsys.readouterr().err == "teleop-app: --episodes must be ≥ 1\n"
