"""How every command reports a problem it cannot go on from: one line on stderr, exit code 2."""
from __future__ import annotations

import sys


def fail(problem: BaseException | str) -> int:
    """Print ``teleop-app: <problem>`` and return 2; an exception without a message shows its type."""
    text = str(problem).strip()
    if isinstance(problem, BaseException) and not text:
        text = f"{type(problem).__name__} (no message): please report this with the command you ran"
    print(f"teleop-app: {text}", file=sys.stderr)
    return 2
