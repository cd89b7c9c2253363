"""What a rollout's episode notes say about how it ran, written and read in one place.

The core writes a rollout's notes (``teleop_app.rollouts.RolloutOptions.describe``);
the analysis reads the execution speed back from them (``teleop-app compare``
shows it beside the policy set). Both use this module, so the wording and its
reading cannot drift apart. Pure functions, any thread.
"""

from __future__ import annotations

import re

_SPEED = re.compile(r"(?:^|, )speed ([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)x(?:,|$)")


def speed_text(speed: float) -> str:
    """The notes' part for an execution speed: empty at 1 (chunks run as planned), else ``speed 1.3x``."""
    return "" if speed == 1.0 else f"speed {speed:g}x"


def speed_in(notes: str) -> float:
    """The execution speed a rollout's notes name (1 when they name none)."""
    found = _SPEED.search(notes)
    return float(found.group(1)) if found else 1.0
