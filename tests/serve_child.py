"""`teleop-app serve` in a process of its own, able to serve the misbehaving policies of the tests too.

    python tests/serve_child.py serve CHECKPOINT [serve options]

Runs the real command line (``teleop_app.cli.main``) after registering one more
checkpoint kind: a ``.hold`` file holds JSON ``{"chunk": N, "drift": RAD,
"bad": {"CALL": WHAT}}`` and loads as :class:`policy_helpers.HoldPolicy`
(WHAT: ``"nan"``, ``"shape"``, ``"raise"``, ``["sleep", S]`` … for that call number).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from policies.loading import register_file_loader  # noqa: E402
from policy_helpers import HoldPolicy  # noqa: E402
from teleop_app.cli.main import main  # noqa: E402


def load_hold(path: Path) -> HoldPolicy:
    spec = json.loads(Path(path).read_text())
    bad = {int(n): tuple(what) if isinstance(what, list) else what for n, what in spec.get("bad", {}).items()}
    return HoldPolicy(chunk=spec.get("chunk", 20), drift=spec.get("drift", 0.0), bad=bad)


if __name__ == "__main__":
    register_file_loader(".hold", load_hold)
    sys.exit(main(sys.argv[1:]))
