"""``teleop-app doctor``: each check against a real failure made at the OS boundary, and the command run for real.

Permissions are judged by the kernel for a process that dropped root to
``nobody`` (a forked child: tests run as root, for whom every node is open); a
missing SDK is a blocked import in a child interpreter; a broken EGL is a glvnd
vendor path with no driver; a full folder is a 2 MB tmpfs; a slow one is a
threshold above what any disk does.
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import re
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import pytest

from teleop_app.cli.main import main
from teleop_app.config import load_rig
from teleop_app.doctor import devices, disk, system
from teleop_app.doctor.result import FAIL, OK, WARN, Check

ROOT = Path(__file__).resolve().parent.parent
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="drops root to nobody, mounts a tmpfs: needs root")


def as_nobody(function, *args) -> Check:
    """``function(*args)`` in a forked child running as nobody (no supplementary groups)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            nobody = pwd.getpwnam("nobody")
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            os.write(write_end, json.dumps(function(*args).to_dict()).encode())
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        text = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0, "the check raised as nobody (traceback above)"
    return Check(**json.loads(text))


@pytest.fixture
def open_dir():
    """A temporary folder nobody may enter (pytest's tmp_path is root-only)."""
    folder = Path(tempfile.mkdtemp(prefix="doctor-"))
    folder.chmod(0o755)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)], check=True)


def device_node(folder: Path, name: str, mode: int, group: str = "root") -> str:
    path = folder / name
    path.touch()
    if os.geteuid() == 0:
        os.chown(path, 0, grp.getgrnam(group).gr_gid)
    path.chmod(mode)
    return str(path)


# -- serial ports ------------------------------------------------------------------------------------

@needs_root
def test_a_serial_port_of_the_dialout_group_tells_a_user_outside_it_to_join(open_dir):
    port = device_node(open_dir, "ttyACM0", 0o660, "dialout")
    check = as_nobody(devices.serial_port, "leader", port)
    assert check.status == FAIL
    assert check.detail == f"{port}: no read/write permission (owner root:dialout, mode -rw-rw----)"
    assert check.fix == "sudo usermod -aG dialout $USER   # then log out and back in"
    assert devices.serial_port("leader", port).status == OK  # root may open it


@needs_root
def test_a_serial_port_no_group_may_open_gets_the_udev_rule(open_dir):
    port = device_node(open_dir, "ttyUSB0", 0o600)
    check = as_nobody(devices.serial_port, "follower", port)
    assert check.status == FAIL and "owner root:root, mode -rw-------" in check.detail
    assert "sudo tee /etc/udev/rules.d/99-teleop-app-servos.rules" in check.fix
    assert "sudo usermod -aG dialout $USER" in check.fix


def test_a_missing_serial_port_says_so_and_points_at_devices(tmp_path):
    check = devices.serial_port("leader", str(tmp_path / "ttyACM9"))
    assert check.status == FAIL and check.detail.endswith("not found: the adapter is unplugged or the rig's port is wrong")
    assert check.fix.startswith("teleop-app devices")


# -- SpaceMouse hidraw nodes and udev rules ----------------------------------------------------------

def fake_spacemouse(root: Path, mode: int) -> str:
    """sysfs and /dev entries of a SpaceMouse Compact on hidraw0, as the kernel lays them out."""
    uevent = root / "sys" / "class" / "hidraw" / "hidraw0" / "device" / "uevent"
    uevent.parent.mkdir(parents=True)
    uevent.write_text("DRIVER=hid-generic\nHID_ID=0003:0000256F:0000C635\nHID_NAME=3Dconnexion SpaceMouse Compact\n")
    (root / "dev").mkdir()
    return device_node(root / "dev", "hidraw0", mode)


@needs_root
def test_a_root_only_spacemouse_node_without_a_rule_gets_the_rule_install_command(open_dir):
    node = fake_spacemouse(open_dir, 0o600)
    rules = open_dir / "rules.d"
    rules.mkdir()
    check = as_nobody(devices.spacemouse_nodes, str(open_dir / "sys"), str(open_dir / "dev"), [str(rules)])
    assert check.status == FAIL and check.detail.startswith(f"{node}: no read/write permission")
    assert check.fix == devices.install_rules_command(devices.SPACEMOUSE_RULES, "99-teleop-app-spacemouse.rules")
    # The command is a working shell line: run through sh (tee into our folder), it writes exactly the rules.
    target = open_dir / "written.rules"
    line = check.fix.split(" | ")[0] + f" > {target}"
    subprocess.run(["sh", "-c", line], check=True)
    assert target.read_text().splitlines() == list(devices.SPACEMOUSE_RULES)

    (rules / "99-teleop-app-spacemouse.rules").write_text("\n".join(devices.SPACEMOUSE_RULES) + "\n")
    again = as_nobody(devices.spacemouse_nodes, str(open_dir / "sys"), str(open_dir / "dev"), [str(rules)])
    assert again.status == FAIL and again.fix.startswith(devices.RELOAD)  # rule there: reload and replug


def test_an_accessible_spacemouse_is_ok_and_none_attached_fails(tmp_path):
    node = fake_spacemouse(tmp_path, 0o666)
    check = devices.spacemouse_nodes(str(tmp_path / "sys"), str(tmp_path / "dev"), [])
    assert check == Check("spacemouse device", OK, f"{node} (SpaceMouse Compact)")
    empty = devices.spacemouse_nodes(str(tmp_path / "nothing"), str(tmp_path / "dev"), [])
    assert empty.status == FAIL and "no SpaceMouse attached" in empty.detail


@needs_root
def test_udev_rules_are_found_in_any_rules_folder_and_commented_lines_do_not_count(open_dir):
    rules = open_dir / "rules.d"
    rules.mkdir()
    (rules / "50-old.rules").write_text("# " + devices.REALSENSE_RULES[0] + "\n")
    missing = as_nobody(devices.udev_rule, "realsense", True, [str(rules)])
    assert missing.status == FAIL and "99-teleop-app-realsense.rules" in missing.fix
    assert devices.udev_rule("realsense", True, [str(rules)]).status == WARN  # root opens it without a rule
    assert devices.udev_rule("realsense", False, [str(rules)]).status == WARN
    (rules / "99-realsense-libusb.rules").write_text('SUBSYSTEMS=="usb", ATTRS{idVendor}=="8086", MODE="0666"\n')
    assert devices.udev_rule("realsense", True, [str(rules)]) == Check(
        "realsense udev rule", OK, f"in {rules / '99-realsense-libusb.rules'}")


def test_the_rules_doctor_installs_are_the_ones_docs_hardware_md_shows():
    text = (ROOT / "docs" / "hardware.md").read_text()
    for line in (*devices.SPACEMOUSE_RULES, *devices.REALSENSE_RULES, *devices.SERVO_RULES):
        assert line in text, line


# -- libraries -----------------------------------------------------------------------------------------

def sdk_check_without(module: str, kind: str, is_needed: bool) -> dict:
    script = (f"import sys, json; sys.modules[{module!r}] = None\n"
              "from teleop_app.doctor.system import sdk_library\n"
              f"print(json.dumps(sdk_library({kind!r}, {module!r}, {is_needed}).to_dict()))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_missing_realsense_sdk_fails_a_realsense_rig_and_only_warns_otherwise():
    check = sdk_check_without("pyrealsense2", "realsense", True)
    assert check["status"] == FAIL
    assert check["detail"].startswith("pyrealsense2 cannot be imported")
    assert check["fix"] == f"{sys.executable} -m pip install pyrealsense2"
    assert sdk_check_without("pyspacemouse", "spacemouse", False)["status"] == WARN


def test_the_sdk_libraries_load_here():
    assert system.sdk_library("realsense", "pyrealsense2", True) == Check(
        "realsense library", OK, "libusb-1.0.so.0 and pyrealsense2 load")


def test_egl_without_a_driver_fails_with_the_packages_to_install(monkeypatch):
    monkeypatch.setenv("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent/egl_vendor.json")  # glvnd finds no driver
    check = system.egl(is_needed=True)
    assert check.status == FAIL and check.detail.startswith("MuJoCo cannot render with MUJOCO_GL=egl")
    assert check.fix.endswith("install -y --no-install-recommends libegl1 libgl1 libgles2 libegl-mesa0 libgl1-mesa-dri")
    assert system.egl(is_needed=False).status == WARN


def test_display_comes_from_the_environment():
    assert system.display({"DISPLAY": ":1"}) == Check("display", OK, "DISPLAY=:1")
    assert system.display({"QT_QPA_PLATFORM": "offscreen"}).status == OK
    headless = system.display({})
    assert headless.status == WARN and headless.fix == "run it on the desktop, or: xvfb-run -a teleop-app gui"


# -- the dataset folder ----------------------------------------------------------------------------------

def test_the_recording_rate_counts_each_camera_as_jpeg():
    config = load_rig("sim_so101")  # two 640x480 cameras at 10 fps, 100 Hz loop
    assert disk.recording_rate(config) == pytest.approx(2 * 640 * 480 * 10 * 3 * disk.JPEG_RATIO + 100 * 512)


@pytest.fixture
def tiny_tmpfs(open_dir):
    mount = open_dir / "full"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


@needs_root
def test_a_full_folder_fails_both_disk_checks(tiny_tmpfs):
    rate = disk.recording_rate(load_rig("sim_so101"))
    space = disk.free_space(tiny_tmpfs, rate)
    assert space.status == FAIL and space.detail.startswith(f"0.00 GB free in {tiny_tmpfs}")
    write = disk.write_speed(tiny_tmpfs, rate, size_mb=8)
    assert write == Check("disk write", FAIL, f"cannot write in {tiny_tmpfs}: No space left on device",
                          "free some space, or record where you may write: --dataset DIR")
    assert list(tiny_tmpfs.iterdir()) == []  # the test file is gone


def test_a_slow_folder_fails_and_a_missing_one_is_measured_in_its_parent(tmp_path):
    slow = disk.write_speed(tmp_path, 1e6, size_mb=4, min_mb_s=1e9)
    assert slow.status == FAIL and "needs 1000000000.0 MB/s" in slow.detail
    assert slow.fix.startswith("record to a local disk")
    later = tmp_path / "demos" / "today"
    fine = disk.write_speed(later, 1e6, size_mb=4, min_mb_s=0.01)
    assert fine.status == OK and f"in {tmp_path} ({later} does not exist yet)" in fine.detail
    assert list(tmp_path.iterdir()) == []  # neither the folder nor the test file was left behind


# -- the command ---------------------------------------------------------------------------------------

def run_doctor(*args: str, prelude: str = "") -> tuple[int, dict]:
    script = f"import sys\n{prelude}\nfrom teleop_app.cli.main import main\nsys.exit(main(sys.argv[1:]))"
    out = subprocess.run([sys.executable, "-c", script, "doctor", "--json", *args], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    return out.returncode, json.loads(out.stdout)


def test_doctor_on_this_machine_prints_every_check_as_json(tmp_path):
    out = subprocess.run([sys.executable, "-m", "teleop_app.cli", "doctor", "--json", "--dataset", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    report = json.loads(out.stdout)
    names = [c["name"] for c in report["checks"]]
    assert names == ["display", "qt plugin", "egl", "realsense library", "spacemouse library", "disk space",
                     "disk write", "cpu cores", "control loop"]
    assert report["rig"] == "sim_so101" and report["dataset"] == str(tmp_path)
    by_name = {c["name"]: c for c in report["checks"]}
    for name in ("qt plugin", "egl", "realsense library", "spacemouse library", "disk write"):
        assert by_name[name]["status"] == OK, by_name[name]  # the libraries make installs, a local disk
    assert re.match(r"\d+\.\d Hz of 100 Hz over 3 s, period p99 ", by_name["control loop"]["detail"])
    failed = [c for c in report["checks"] if c["status"] == FAIL]
    assert report["can_run"] is (not failed)
    assert out.returncode == (1 if failed else 0), out.stderr
    assert all(c["fix"] for c in report["checks"] if c["status"] != OK)


def test_doctor_fails_a_hardware_rig_on_what_it_lacks(tmp_path):
    rig = tmp_path / "hw.toml"
    rig.write_text(f"""
name = "hw"
[robot]
type = "sim_so101"
[[cameras]]
name = "wrist"
type = "realsense"
[[inputs]]
name = "leader"
type = "leader_arm"
port = "{tmp_path / 'ttyACM7'}"
calibration = "{tmp_path / 'leader.json'}"
[[inputs]]
name = "spacemouse"
type = "spacemouse"
""")
    code, report = run_doctor("--rig", str(rig), "--dataset", str(tmp_path),
                              prelude="sys.modules['pyrealsense2'] = None")
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert code == 1 and report["can_run"] is False
    assert status["realsense library"] == FAIL
    assert status["serial leader"] == FAIL
    assert status["spacemouse device"] == FAIL  # none attached to this machine
    assert {"spacemouse udev rule", "realsense udev rule"} <= set(status)


def test_an_unknown_rig_is_one_line_and_exit_2(capsys):
    assert main(["doctor", "--rig", "no_such_rig.toml"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("teleop-app: rig file no_such_rig.toml not found") and err.count("\n") == 1
