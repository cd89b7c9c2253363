"""``teleop_app/system_packages.py --install`` as make runs it: real processes, fake dpkg-query/apt-get/sudo.

The fakes are shell scripts on a PATH of their own that log every call (``id``
says who we are: 0 for root, 1000 for a user); nothing is installed for real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from teleop_app import system_packages

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "teleop_app" / "system_packages.py"
MISSING = ("libhidapi-hidraw0", "libusb-1.0-0")  # in the order of the package list


def _script(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


@pytest.fixture
def fake_os():
    """A PATH directory with fake dpkg-query and apt-get, and a log of their calls."""
    folder = Path(tempfile.mkdtemp(prefix="fake-os-"))
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    log = folder / "calls.log"
    log.touch()
    for tool in ("env", "true"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    _script(bin_dir / "dpkg-query", f"""printf "%s\\n" "dpkg-query $*" >> {log}
status=0
for a in "$@"; do
  case "$a" in -*) continue;; esac
  case " {' '.join(MISSING)} " in *" $a "*) status=1;; *) echo "$a ii ";; esac
done
exit $status
""")
    _script(bin_dir / "apt-get", f'echo "apt-get $* (DEBIAN_FRONTEND=$DEBIAN_FRONTEND)" >> {log}\n')
    yield bin_dir, log
    shutil.rmtree(folder)


def _run(bin_dir: Path, as_root: bool) -> subprocess.CompletedProcess:
    _script(bin_dir / "id", f'[ "$1" = -u ] && echo {0 if as_root else 1000}\n')
    return subprocess.run([sys.executable, str(SCRIPT), "--install"], env={"PATH": str(bin_dir)},
                          capture_output=True, text=True, timeout=60)


def _calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


def test_as_root_it_updates_once_then_installs_only_what_is_missing(fake_os):
    bin_dir, log = fake_os
    done = _run(bin_dir, as_root=True)
    assert done.returncode == 0, done.stderr
    calls = _calls(log)
    assert calls[0].startswith("dpkg-query -W ") and "libusb-1.0-0" in calls[0]
    assert calls[1:] == [
        "apt-get -o DPkg::Lock::Timeout=300 update -qq (DEBIAN_FRONTEND=noninteractive)",
        f"apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends {' '.join(MISSING)} (DEBIAN_FRONTEND=noninteractive)",
    ]
    assert done.stderr == f"system packages: installing {' '.join(MISSING)}\n"


def test_nothing_missing_is_one_dpkg_query_and_silence(fake_os):
    bin_dir, log = fake_os
    _script(bin_dir / "dpkg-query", f"""printf "%s\\n" "dpkg-query $*" >> {log}
for a in "$@"; do case "$a" in -*) ;; *) echo "$a ii ";; esac; done
""")
    done = _run(bin_dir, as_root=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert [c.split()[0] for c in _calls(log)] == ["dpkg-query"]


def test_without_root_it_uses_passwordless_sudo(fake_os):
    bin_dir, log = fake_os
    _script(bin_dir / "sudo", f'echo "sudo $*" >> {log}\n[ "$1" = -n ] && shift\nexec "$@"\n')
    done = _run(bin_dir, as_root=False)
    assert done.returncode == 0, done.stderr
    assert _calls(log)[1:] == [
        "sudo -n true",
        "sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq",
        "apt-get -o DPkg::Lock::Timeout=300 update -qq (DEBIAN_FRONTEND=noninteractive)",
        f"sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends {' '.join(MISSING)}",
        f"apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends {' '.join(MISSING)} (DEBIAN_FRONTEND=noninteractive)",
    ]


EXPECTED_LINE = (f"system packages missing ({' '.join(MISSING)}): run `sudo apt-get update && sudo apt-get install "
                 f"-y --no-install-recommends {' '.join(MISSING)}`, then run make again\n")


def test_sudo_asking_for_a_password_stops_with_the_command_to_run(fake_os):
    bin_dir, log = fake_os
    _script(bin_dir / "sudo", f'echo "sudo $*" >> {log}\necho "sudo: a password is required" >&2\nexit 1\n')
    done = _run(bin_dir, as_root=False)
    assert done.returncode == 1
    assert done.stderr == EXPECTED_LINE
    assert [c.split()[0] for c in _calls(log)] == ["dpkg-query", "sudo"]  # tried `sudo -n true`, installed nothing


def test_no_sudo_at_all_stops_with_the_command_to_run(fake_os):
    bin_dir, log = fake_os
    done = _run(bin_dir, as_root=False)
    assert (done.returncode, done.stderr) == (1, EXPECTED_LINE)
    assert [c.split()[0] for c in _calls(log)] == ["dpkg-query"]


def test_a_failing_apt_get_stops_make_with_its_command(fake_os):
    bin_dir, log = fake_os
    _script(bin_dir / "apt-get", f'echo "apt-get $*" >> {log}\nexit 100\n')
    done = _run(bin_dir, as_root=True)
    assert done.returncode == 1
    assert "`env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq` failed (exit 100)" in done.stderr
    assert len(_calls(log)) == 2  # the query and the update, no install after a failed update


def test_the_script_imports_only_the_standard_library():
    """make runs it before the venv exists: a third-party import would break the first `make`."""
    probe = ("import sys, runpy; before = set(sys.modules); runpy.run_path(sys.argv[1], run_name='probe'); "
             "print(sorted(m.split('.')[0] for m in set(sys.modules) - before "
             "if m.split('.')[0] not in sys.stdlib_module_names))")
    out = subprocess.run([sys.executable, "-I", "-c", probe, str(SCRIPT)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_every_library_doctor_names_maps_to_one_package():
    assert system_packages.package_of("libusb-1.0.so.0") == "libusb-1.0-0"
    assert system_packages.package_of("libhidapi-hidraw.so.0") == "libhidapi-hidraw0"
    libraries = [p.library for p in system_packages.PACKAGES if p.library]
    assert len(libraries) == len(set(libraries))
    assert set(system_packages.names("window")) >= {"libxcb-cursor0", "libxkbcommon-x11-0"}
