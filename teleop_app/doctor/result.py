"""One doctor check's answer: its name, ok / warn / fail, what was found and the command that fixes it.

Plain data, built by the check functions of :mod:`teleop_app.doctor` and
printed by the CLI; no threads. Invariant: a ``fail`` means something the rig
needs is broken (the command exits 1); a ``warn`` never stops the rig.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    detail: str
    fix: str | None = None  # a shell command (or the one step to take) when status is not OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def needed(is_needed: bool) -> str:
    """FAIL for a problem with something the rig uses, WARN for one it does not."""
    return FAIL if is_needed else WARN
