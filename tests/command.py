"""The installed ``teleop-app`` command, run as a user runs it (a subprocess, no terminal)."""

import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "teleop-app"


def cli(*args, code=0):
    """Run ``teleop-app ARGS``; its exit status must be ``code`` and no traceback may reach stderr."""
    out = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    assert out.returncode == code, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    return out


def wait_for_console(proc: subprocess.Popen) -> None:
    """Read the window's stderr until it says the console is open (at most 20 lines); a later line fails."""
    lines = []
    while not any("console open" in line for line in lines) and len(lines) < 20:
        lines.append(proc.stderr.readline())
    assert "console open" in lines[-1], lines
