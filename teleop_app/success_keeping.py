"""Whether an episode started by hand ends by itself as a success once the robot reports success.

``collect`` always ends its episodes that way (``--after-success``); in the window
it is the operator's choice, per kind of input: on by default for a scripted
expert (it never presses a key), off for a human (who keeps or discards by hand).
The choice made for one kind is kept when the active input changes to another
and back. Plain Python, called on the GUI thread; it only sets
:attr:`OperatorSession.episode_rules`, which applies from the next episode on.
"""

from __future__ import annotations

import dataclasses

from teleop_app.operator_session import OperatorSession
from teleop_app.runs import AFTER_SUCCESS_S


class SuccessKeeping:
    """The rule for episodes started in the window, by the active input's kind (its ``source``)."""

    def __init__(self, session: OperatorSession, after_success_s: float = AFTER_SUCCESS_S) -> None:
        self.session = session
        self.after_success_s = after_success_s
        self.choices: dict[str, bool] = {}  # input kind ("human", "scripted") -> the operator's choice

    @property
    def available(self) -> bool:
        """Only a robot that can tell success (the sim) can end an episode on it."""
        return self.session.rig.robot.success() is not None

    def kind(self) -> str:
        device = self.session.rig.inputs.get(self.session.active_input or "")
        return getattr(device, "source", "human")

    def enabled(self) -> bool:
        kind = self.kind()
        return self.available and self.choices.get(kind, kind == "scripted")

    def choose(self, on: bool) -> None:
        """The operator's choice for the active input's kind; applied at once."""
        self.choices[self.kind()] = on
        self.apply()

    def apply(self) -> None:
        """Set the session's episode rules for the active input (call it when the active input changes)."""
        rules = self.session.episode_rules
        after = self.after_success_s if self.enabled() else None
        if rules.after_success_s != after:
            self.session.episode_rules = dataclasses.replace(rules, after_success_s=after)
