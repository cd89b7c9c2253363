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
