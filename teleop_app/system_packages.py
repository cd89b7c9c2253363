"""The Debian packages the project needs, and the one step that installs the missing ones.

This list is the only place they are named: ``make`` runs this file before it
builds the venv (``python3 teleop_app/system_packages.py --install``, so it may
import nothing outside the standard library), and ``teleop-app doctor`` reads it
to print fix commands. One process, no threads. Invariants: installed packages
are found with one ``dpkg-query`` (tens of milliseconds, so every ``make`` run
may check); ``apt-get update`` and ``install`` run only when something is
missing; without root or password-less sudo nothing is installed and the exact
command to run is printed on one line, with exit status 1.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class SystemPackage:
    """A Debian package, the shared library it provides (if one) and what needs it."""

    name: str
    library: str | None
    needed_by: str


PACKAGES: tuple[SystemPackage, ...] = (
    # MuJoCo renders the sim cameras through EGL (Mesa's llvmpipe when there is no GPU).
    SystemPackage("libegl1", "libEGL.so.1", "sim"),
    SystemPackage("libgl1", "libGL.so.1", "sim"),
    SystemPackage("libgles2", "libGLESv2.so.2", "sim"),
    SystemPackage("libegl-mesa0", "libEGL_mesa.so.0", "sim"),
    SystemPackage("libgl1-mesa-dri", None, "sim"),
    # Hardware SDKs: pyspacemouse loads hidapi, pyrealsense2 links libusb.
    SystemPackage("libhidapi-hidraw0", "libhidapi-hidraw.so.0", "spacemouse"),
    SystemPackage("libusb-1.0-0", "libusb-1.0.so.0", "realsense"),
    # Qt's xcb platform plugin (the window); Qt's own error names the wrong library.
    SystemPackage("libxkbcommon0", "libxkbcommon.so.0", "window"),
    SystemPackage("libxkbcommon-x11-0", "libxkbcommon-x11.so.0", "window"),
    SystemPackage("libdbus-1-3", "libdbus-1.so.3", "window"),
    SystemPackage("libfontconfig1", "libfontconfig.so.1", "window"),
    SystemPackage("libglib2.0-0", "libglib-2.0.so.0", "window"),
    SystemPackage("libxcb-icccm4", "libxcb-icccm.so.4", "window"),
    SystemPackage("libxcb-keysyms1", "libxcb-keysyms.so.1", "window"),
    SystemPackage("libxcb-cursor0", "libxcb-cursor.so.0", "window"),
    # A window without a desktop: `xvfb-run teleop-app gui`.
    SystemPackage("xvfb", None, "window"),
    SystemPackage("xauth", None, "window"),
)


def names(needed_by: str | None = None) -> list[str]:
    """Package names, all of them or those one part of the app needs ("sim", "window", "realsense", "spacemouse")."""
    return [p.name for p in PACKAGES if needed_by is None or p.needed_by == needed_by]


def package_of(library: str) -> str | None:
    """The package that provides a shared library such as ``libusb-1.0.so.0`` (None: not one of ours)."""
    return next((p.name for p in PACKAGES if p.library == library), None)


def install_command(packages: list[str], as_root: bool | None = None) -> str:
    """The shell command a person runs to install ``packages`` (with ``sudo`` unless they are root)."""
    root = _is_root() if as_root is None else as_root
    sudo = "" if root else "sudo "
    return f"{sudo}apt-get update && {sudo}apt-get install -y --no-install-recommends {' '.join(packages)}"


def missing(packages: list[str]) -> list[str]:
    """Those of ``packages`` dpkg does not list as installed (one ``dpkg-query`` call)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\\n", *packages],
                         capture_output=True, text=True)
    installed = {fields[0] for fields in (line.split() for line in out.stdout.splitlines())
                 if len(fields) >= 2 and fields[1] == "ii"}
    return [p for p in packages if p not in installed]


def _is_root() -> bool:
    return subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() == "0"


def _passwordless_sudo() -> bool:
    if shutil.which("sudo") is None:
        return False
    return subprocess.run(["sudo", "-n", "true"], capture_output=True).returncode == 0


def install_missing(packages: list[str]) -> int:
    """Install what is missing of ``packages``: as root, through ``sudo -n``, or say what to run (exit status 1)."""
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        print(f"system packages: not a Debian/Ubuntu system, cannot check them; make sure these are "
              f"installed (Debian names): {' '.join(packages)}", file=sys.stderr)
        return 0
    todo = missing(packages)
    if not todo:
        return 0
    if _is_root():
        prefix: list[str] = []
    elif _passwordless_sudo():
        prefix = ["sudo", "-n"]
    else:
        print(f"system packages missing ({' '.join(todo)}): run `{install_command(todo, as_root=False)}`, "
              f"then run make again", file=sys.stderr)
        return 1
    print(f"system packages: installing {' '.join(todo)}", file=sys.stderr)
    # Wait for another apt/dpkg (unattended upgrades, a colleague) instead of failing on its lock.
    apt = [*prefix, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=300"]
    for args in (["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", *todo]):
        done = subprocess.run([*apt, *args], stdout=subprocess.DEVNULL)
        if done.returncode != 0:
            print(f"system packages: `{' '.join([*apt, *args])}` failed (exit {done.returncode}); "
                  f"fix the error above, or run `{install_command(todo)}` yourself", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The Debian packages teleop-app needs.")
    parser.add_argument("--install", action="store_true", help="install the missing ones (root or sudo -n)")
    args = parser.parse_args(argv)
    if args.install:
        return install_missing(names())
    todo = missing(names())
    print(install_command(todo) if todo else "all installed: " + " ".join(names()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
