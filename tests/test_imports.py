"""The core's import rules, checked in a fresh interpreter: no Qt, and no hardware SDK needed to import."""

import subprocess
import sys
import textwrap

CORE = ("teleop_app", "drivers", "recordings", "policies")
HARDWARE_SDKS = ("pyrealsense2", "pyspacemouse", "easyhid", "hid", "serial", "dynamixel_sdk", "scservo_sdk")


def test_every_core_module_imports_without_qt_or_a_hardware_sdk():
    script = textwrap.dedent(f"""
        import importlib, pkgutil, sys
        for sdk in {HARDWARE_SDKS!r}:
            sys.modules[sdk] = None  # importing it now raises ImportError, as on a machine without it
        names = []
        for package in {CORE!r}:
            module = importlib.import_module(package)
            names.append(package)
            for info in pkgutil.walk_packages(module.__path__, package + "."):
                if info.name.startswith("teleop_app.cli"):
                    continue  # a front end (running teleop_app.cli.__main__ would open the window)
                importlib.import_module(info.name)
                names.append(info.name)
        qt = sorted(m for m in sys.modules if m.split(".")[0] in ("PySide6", "shiboken6", "pyqtgraph"))
        print(len(names), qt)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, qt = out.stdout.split(" ", 1)
    assert int(count) > 60 and qt.strip() == "[]", out.stdout
