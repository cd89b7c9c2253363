"""``--where`` conditions on episodes: task, success, source and quality flags.

A condition is ``KEY=VALUE`` or ``KEY!=VALUE``; an episode is selected when it
meets every condition. Keys:

- ``task``: the task sentence; the value may be a shell-style pattern (``*cube*``);
- ``success``: ``true``, ``false`` or ``unknown``;
- ``source``: ``human``, ``policy`` or ``mixed``, the episode's dominant source
  (as the speed analysis defines it: a majority of its kept ticks, policy and
  intervention ticks counting as policy);
- ``flag``: a quality flag (``docs/quality-flags.md``); ``flag=jerky`` selects the
  episodes that have it, ``flag!=jerky`` the others, ``flag=none`` the unflagged.

Flags that compare an episode with the others (``jerky``, ``long``, ``short``)
are judged among all the episodes given, before any filtering. Damaged files
never match. Runs on the caller's thread.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from recordings.analysis.metrics import dominant_source
from recordings.analysis.quality import FLAGS, check_dataset
from recordings.format import SUCCESS_VALUES
from recordings.library import summarize

KEYS = ("task", "success", "source", "flag")
_CONDITION = re.compile(r"^\s*(\w+)\s*(!=|=)\s*(.*?)\s*$")


@dataclass(frozen=True)
class Condition:
    key: str
    value: str
    negated: bool

    @classmethod
    def parse(cls, text: str) -> Condition:
        """``KEY=VALUE`` or ``KEY!=VALUE``; ValueError with the reason for anything else."""
        m = _CONDITION.match(text)
        if not m:
            raise ValueError(f"--where {text!r}: expected KEY=VALUE or KEY!=VALUE with KEY one of {', '.join(KEYS)}")
        key, op, value = m.groups()
        if key not in KEYS:
            raise ValueError(f"--where {text!r}: unknown key {key!r} (one of {', '.join(KEYS)})")
        allowed = {"success": SUCCESS_VALUES, "source": ("human", "policy", "mixed"), "flag": (*FLAGS, "none")}
        if key in allowed and value not in allowed[key]:
            raise ValueError(f"--where {text!r}: {key} is one of {', '.join(allowed[key])}")
        return cls(key, value, op == "!=")


def select(paths: Sequence[Path], conditions: Sequence[str]) -> list[Path]:
    """The paths whose episodes meet every condition, in input order."""
    parsed = [Condition.parse(c) for c in conditions]
    if not parsed:
        return list(paths)
    flags = {}
    if any(c.key == "flag" for c in parsed):
        flags = {q.path: q.flags for q in check_dataset(paths)}
    out = []
    for path in paths:
        s = summarize(path)
        if s.damaged:
            continue
        values = {"task": s.task, "success": s.success, "source": dominant_source(s.source_mix)}
        if all(_meets(c, values, flags.get(path, {})) for c in parsed):
            out.append(path)
    return out


def _meets(c: Condition, values: dict[str, str], flags: dict[str, str]) -> bool:
    if c.key == "flag":
        hit = not flags if c.value == "none" else c.value in flags
    elif c.key == "task":
        hit = fnmatch.fnmatchcase(values["task"], c.value)
    else:
        hit = values[c.key] == c.value
    return hit != c.negated
