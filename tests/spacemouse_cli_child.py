"""``teleop-app ARGS…`` with an emulated SpaceMouse Pro plugged in; its kill button is pressed once FILE appears.

    python tests/spacemouse_cli_child.py FILE -- collect --headless …

The emulated device (tests/fake_hid.py) stands where hidapi stands, so the real
driver and the real pyspacemouse parse its reports. When the press is sent the
child prints ``pressed <monotonic time>`` on stdout (the clock is the machine's).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import drivers.spacemouse as spacemouse_module  # noqa: E402
from fake_hid import Bus, FakeHID, button_report  # noqa: E402
from teleop_app.cli import main  # noqa: E402

PRO = (0x046D, 0xC62B)  # SpaceMouse Pro: its buttons 0, 14 and 10 are bits 0, 1 and 2 of report 3's first byte
KILL_MASK = 0b100  # button 10


def spacemouse_rig(kill_button: int = 10) -> str:
    """A sim rig (no cameras) with the scripted expert and a SpaceMouse Pro whose button 10 is the kill switch."""
    return ('name = "sim_kill_button"\nrate_hz = 100.0\n[robot]\ntype = "sim_so101"\n'
            '[[inputs]]\nname = "scripted"\ntype = "scripted"\n'
            f'[[inputs]]\nname = "spacemouse"\ntype = "spacemouse"\ngripper_button = 0\nepisode_button = 14\n'
            f'kill_button = {kill_button}\n')


def press(hid: FakeHID, announce=lambda t: None) -> None:
    """Press the kill button, ``announce(when)``, then release it."""
    t = time.monotonic()
    hid.send(button_report(KILL_MASK))
    announce(t)
    time.sleep(0.05)
    hid.send(button_report(0))


def main_child() -> int:
    trigger, argv = Path(sys.argv[1]), sys.argv[sys.argv.index("--") + 1:]
    hid = FakeHID(ids=PRO)
    spacemouse_module.default_hid_enumerate = Bus(hid)

    def press_when_asked() -> None:
        while not trigger.exists():
            time.sleep(0.01)
        press(hid, lambda t: print(f"pressed {t}", flush=True))

    threading.Thread(target=press_when_asked, daemon=True).start()
    return main(argv)


if __name__ == "__main__":
    sys.exit(main_child())
