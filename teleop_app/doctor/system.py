"""Doctor checks of the machine: display, Qt's platform plugin, EGL for MuJoCo, hardware SDK libraries, cores.

Qt is never imported here (the core stays Qt-free): its plugin is inspected with
``ldd``. The EGL check renders a tiny MuJoCo scene in a child process, so a
broken driver cannot take the doctor down. Fix commands for system libraries
come from :mod:`teleop_app.system_packages`, the project's one package list.
No threads.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from teleop_app import system_packages
from teleop_app.doctor.result import OK, WARN, Check, needed

# Renders one frame of a one-geom scene the way the sim cameras do (MUJOCO_GL=egl), and names the GL renderer.
_EGL_PROBE = """
import ctypes, json, mujoco
model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><light pos='0 0 1'/><geom size='.1'/></worldbody></mujoco>")
data = mujoco.MjData(model)
renderer = mujoco.Renderer(model, 32, 32)
mujoco.mj_forward(model, data)
renderer.update_scene(data)
pixels = renderer.render()
try:
    gl = ctypes.CDLL("libGL.so.1")
    gl.glGetString.restype = ctypes.c_char_p
    name = (gl.glGetString(0x1F01) or b"").decode()  # GL_RENDERER
except OSError:
    name = ""
renderer.close()
print(json.dumps({"renderer": name, "lit_pixels": int((pixels > 0).any(axis=2).sum())}))
"""


def display(env: Mapping[str, str] = os.environ) -> Check:
    """A desktop to open the window on, or Qt's offscreen platform (headless use and tests)."""
    for var in ("WAYLAND_DISPLAY", "DISPLAY"):
        if env.get(var):
            return Check("display", OK, f"{var}={env[var]}")
    platform = env.get("QT_QPA_PLATFORM", "")
    if platform.split(":")[0] in ("offscreen", "minimal"):
        return Check("display", OK, f"none, QT_QPA_PLATFORM={platform}: windows render offscreen (headless, tests)")
    return Check("display", WARN, "no DISPLAY or WAYLAND_DISPLAY: the window cannot open (headless commands work)",
                 "run it on the desktop, or: xvfb-run -a teleop-app gui")


def qt_platform_plugin(env: Mapping[str, str] = os.environ) -> Check:
    """Every library Qt's platform plugins link can be found (``ldd``); Qt's own error names the wrong one.

    Checks xcb (a desktop or Xvfb) and the platform ``QT_QPA_PLATFORM`` names, if another.
    """
    names = list(dict.fromkeys([(env.get("QT_QPA_PLATFORM", "") or "xcb").split(":")[0], "xcb"]))
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return Check("qt plugin", WARN, "PySide6 is not installed: the window cannot open", "make run")
    folder = Path(spec.submodule_search_locations[0]) / "Qt" / "plugins" / "platforms"
    lost: set[str] = set()
    for name in names:
        plugin = folder / f"libq{name}.so"
        if not plugin.is_file():
            return Check("qt plugin", WARN, f"Qt has no platform plugin {name!r} ({plugin} missing)",
                         "unset QT_QPA_PLATFORM, or set it to xcb, wayland or offscreen")
        try:
            out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            return Check("qt plugin", WARN, f"cannot run ldd on {plugin.name}: {exc}", "sudo apt-get install -y libc-bin")
        lost.update(re.findall(r"^\s*(\S+) => not found", out, re.MULTILINE))
    plugins = ", ".join(f"libq{n}.so" for n in names)
    if not lost:
        return Check("qt plugin", OK, f"{plugins}: every library they link is installed")
    packages = [system_packages.package_of(lib) for lib in sorted(lost)]
    fix_with = sorted({p for p in packages if p}) if all(packages) else system_packages.names("window")
    return Check("qt plugin", WARN, f"{plugins} cannot load, missing {', '.join(sorted(lost))}: the window "
                 "cannot open", system_packages.install_command(fix_with))


def egl(is_needed: bool, timeout: float = 60.0) -> Check:
    """MuJoCo can render offscreen through EGL (how the sim cameras render); a child process tries it."""
    env = dict(os.environ, MUJOCO_GL="egl")
    fix = system_packages.install_command(system_packages.names("sim"))
    try:
        done = subprocess.run([sys.executable, "-c", _EGL_PROBE], env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return Check("egl", needed(is_needed), f"rendering a 32x32 test scene took over {timeout:.0f} s", fix)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        return Check("egl", needed(is_needed), f"MuJoCo cannot render with MUJOCO_GL=egl: {lines[-1]}", fix)
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    renderer = probe["renderer"] or "an EGL renderer"
    if probe["lit_pixels"] == 0:
        return Check("egl", needed(is_needed), f"{renderer} rendered a black test frame", fix)
    return Check("egl", OK, f"MuJoCo renders offscreen with {renderer}")


def sdk_library(kind: str, module: str, is_needed: bool) -> Check:
    """The system library of a hardware SDK loads, then the SDK imports (``kind``: "realsense" or "spacemouse")."""
    package = system_packages.names(kind)[0]
    library = next(p.library for p in system_packages.PACKAGES if p.name == package)
    name = f"{kind} library"
    try:
        ctypes.CDLL(library)
    except OSError as exc:
        return Check(name, needed(is_needed), f"{library} cannot load ({exc}); {module} needs it",
                     system_packages.install_command([package]))
    try:
        importlib.import_module(module)
    except (ImportError, OSError) as exc:
        lost = re.search(r"(lib[\w.+-]+\.so[\d.]*): cannot open shared object file", str(exc))
        missing_package = system_packages.package_of(lost.group(1)) if lost else None
        if missing_package:
            fix = system_packages.install_command([missing_package])
        elif lost:
            fix = f"install the package that provides {lost.group(1)}"
        else:
            fix = f"{sys.executable} -m pip install {module}"
        return Check(name, needed(is_needed), f"{module} cannot be imported: {exc}", fix)
    return Check(name, OK, f"{library} and {module} load")


def cpu_cores() -> Check:
    """Two cores or more: the control loop and the camera renderer each get their own."""
    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        return Check("cpu cores", WARN, f"{cores} core available: the loop shares it with the camera renderer "
                     "and the window (expect jitter)", "use a machine with 2 or more cores")
    return Check("cpu cores", OK, f"{cores} cores available")
