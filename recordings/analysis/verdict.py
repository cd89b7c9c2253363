"""The verdict of a human-vs-policy comparison: success first, speed on like with like, causes within the gap.

Plain Python, no threads; :func:`recordings.analysis.compare.compare_metrics`
calls these in order and the UI, the CLI and the HTML report only display what
they decide. The rules, each one an invariant :func:`consistency_problems` checks:

* The first sentence states both sets' success rates (episodes labelled
  ``true`` of those labelled ``true`` or ``false``).
* Durations are compared on like with like: each side's successes (a side whose
  success is not labelled at all contributes every episode). A side with
  labelled episodes but no success leaves the speed not comparable. Failures are
  reported separately, never mixed into the headline ratio.
* A policy that succeeds less often than the demonstrations (or fails at all
  when the demonstrations' success is unknown) is never called "not slower" or
  "faster", and the verdict is not ``ok`` (not green).
* Each cause's share of the duration gap is its own estimate capped at what the
  causes before it (largest first) left of the gap: the shares never add up to
  more than the gap.
* A phase whose extra time is at least ``PHASE_GAP_SHARE`` of the gap and that
  is itself at least ``PHASE_RATIO`` × the demonstrations' is named in plain
  words. A phase that is uniformly stretched with the rest does not dominate,
  and idle at the episode's ends (the ``idle_ends`` check's evidence) is left
  out of reach and lift.
* Every check whose evidence crosses one of its thresholds is named: a check
  that fires by its title, one that only partly fires by its findings.
  "No cause found" is said only when nothing crosses a threshold, no phase
  dominates and the policy is not slower.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from recordings.analysis.metrics import EpisodeMetrics

if TYPE_CHECKING:
    from recordings.analysis.compare import Check, Comparison

PHASES = ("reach", "grasp", "lift")
PHASE_GAP_SHARE = 0.5  # "accounts for most of the gap"
PHASE_RATIO = 1.5  # and is itself clearly longer than the demonstrations' (not just stretched with the rest)
PHASE_WORDS = {"reach": "is slow to reach the object", "grasp": "hesitates at the grasp",
               "lift": "is slow to lift and finish"}
NO_CAUSE = "No cause found"


@dataclass(frozen=True)
class Outcome:
    """How many episodes of one set are labelled successful, failed, or not labelled."""

    successes: int
    failures: int
    unlabelled: int

    @property
    def labelled(self) -> int:
        return self.successes + self.failures

    @property
    def rate(self) -> float:
        """Share of the labelled episodes that succeeded (NaN when none is labelled)."""
        return self.successes / self.labelled if self.labelled else math.nan

    def text(self) -> str:
        """"4 of 20 (20 %)", with the unlabelled ones mentioned."""
        if not self.labelled:
            return "not labelled"
        extra = f"; {self.unlabelled} more not labelled" if self.unlabelled else ""
        return f"{self.successes} of {self.labelled} ({self.rate:.0%}{extra})"

    def to_dict(self) -> dict[str, object]:
        return {"successes": self.successes, "failures": self.failures, "unlabelled": self.unlabelled,
                "rate": None if math.isnan(self.rate) else round(self.rate, 6)}


def outcome_of(items: Sequence[EpisodeMetrics]) -> Outcome:
    return Outcome(sum(m.success == "true" for m in items), sum(m.success == "false" for m in items),
                   sum(m.success not in ("true", "false") for m in items))


def like_for_like(items: Sequence[EpisodeMetrics]) -> list[EpisodeMetrics] | None:
    """The episodes whose speed counts: the successes; all of them when none is labelled; None when
    episodes are labelled and none succeeded (its speed cannot be compared on successes)."""
    outcome = outcome_of(items)
    if not outcome.labelled:
        return list(items)
    wins = [m for m in items if m.success == "true"]
    return wins or None


def failures_of(items: Sequence[EpisodeMetrics]) -> list[EpisodeMetrics]:
    return [m for m in items if m.success == "false"]


def success_lower(human: Outcome, policy: Outcome) -> bool:
    """The policy succeeds less often than the demonstrations (or fails at all when theirs is unknown)."""
    if not policy.labelled:
        return False
    if not human.labelled:
        return policy.failures > 0
    return policy.rate < human.rate


def phase_means_of(items: Sequence[EpisodeMetrics]) -> dict[str, float]:
    """Mean seconds per phase (an episode without a phase adds 0 to it); zeros for no episodes."""
    if not items:
        return dict.fromkeys(PHASES, 0.0)
    return {ph: float(np.mean([m.values[f"{ph}_s"] if math.isfinite(m.values[f"{ph}_s"]) else 0.0
                               for m in items])) for ph in PHASES}


IDLE_OF_PHASE = {"reach": "idle_start_s", "lift": "idle_end_s"}  # idle at the ends: the idle check's, not the phase's


def _active_phase_means(items: Sequence[EpisodeMetrics]) -> dict[str, float]:
    """Like :func:`phase_means_of`, with the idle at the start left out of reach and at the end out of lift."""
    means = phase_means_of(items)
    for phase, key in IDLE_OF_PHASE.items():
        idle = [m.values[key] for m in items if math.isfinite(m.values[key])]
        means[phase] = max(means[phase] - (float(np.mean(idle)) if idle else 0.0), 0.0)
    return means


@dataclass(frozen=True)
class PhaseFinding:
    """A phase that accounts for most of the duration gap."""

    phase: str
    human_s: float
    policy_s: float
    gap_s: float

    @property
    def extra_s(self) -> float:
        return self.policy_s - self.human_s

    def text(self) -> str:
        idle = {"reach": ", idle at the start left out", "lift": ", idle at the end left out"}.get(self.phase, "")
        return (f"It {PHASE_WORDS[self.phase]}: {self.policy_s:.2f} s vs {self.human_s:.2f} s in the "
                f"{self.phase} phase{idle} ({self.extra_s:+.2f} s of the {self.gap_s:+.2f} s gap).")

    def to_dict(self) -> dict[str, object]:
        return {"phase": self.phase, "human_s": round(self.human_s, 6), "policy_s": round(self.policy_s, 6),
                "extra_s": round(self.extra_s, 6), "gap_s": round(self.gap_s, 6)}


def dominant_phase(human: Sequence[EpisodeMetrics] | None, policy: Sequence[EpisodeMetrics] | None,
                   gap: float) -> PhaseFinding | None:
    """The phase that accounts for most of a positive gap and is itself ≥ PHASE_RATIO × the human's."""
    if not human or not policy or not (math.isfinite(gap) and gap > 0):
        return None
    h, p = _active_phase_means(human), _active_phase_means(policy)
    best = max(PHASES, key=lambda ph: p[ph] - h[ph])
    extra = p[best] - h[best]
    if extra >= PHASE_GAP_SHARE * gap and p[best] >= PHASE_RATIO * h[best]:
        return PhaseFinding(best, h[best], p[best], gap)
    return None


def allot_shares(causes: Sequence[Check], gap: float) -> None:
    """Set each cause's ``share_s``: its estimate capped at what is left of a positive gap (largest first)."""
    positive = math.isfinite(gap) and gap > 0
    left = gap if positive else 0.0
    for cause in causes:
        if cause.explains_s is None or not positive:
            cause.share_s = None
            continue
        cause.share_s = min(max(cause.explains_s, 0.0), left)
        left -= cause.share_s


def share_text(cause: Check, gap: float) -> str:
    """"≈ 0.68 s of the +0.68 s gap, 100%", saying so when the estimate had to be capped; "" without a share."""
    if cause.share_s is None or not (math.isfinite(gap) and gap > 0):
        return ""
    text = f"≈ {cause.share_s:.2f} s of the {gap:+.2f} s gap, {cause.share_s / gap:.0%}"
    if cause.explains_s is not None and cause.explains_s > cause.share_s + 0.005:
        text += f" (its own estimate of {cause.explains_s:.2f} s capped at what was left of the gap)"
    return text


def findings(checks: Sequence[Check]) -> list[str]:
    """The differences a check measured beyond a threshold although the check as a whole did not fire."""
    out = []
    for check in checks:
        if not check.fired:
            out += [c.finding for c in check.criteria if c.met and c.finding]
    return out


def verdict_text(c: Comparison) -> str:
    """The verdict, first sentence the success rates (see the module docstring for the rules)."""
    h, p = c.outcomes["human"], c.outcomes["policy"]
    if h.labelled and p.labelled:
        parts = [f"The policy succeeded in {p.text()}, the demonstrations in {h.text()}."]
    elif p.labelled:
        parts = [f"The policy succeeded in {p.text()}; the demonstrations' success is not labelled."]
    elif h.labelled:
        parts = [f"The demonstrations succeeded in {h.text()}; the policy's success is not labelled."]
    else:
        parts = ["Neither set's success is labelled: every episode counts."]
    parts.append(_speed_sentence(c))
    failed = c.failures
    if failed.human.n or failed.policy.n:
        def side(name: str, d) -> str:
            return f"{name}'s {d.n} lasted {d.stat('mean'):.2f} s on average" if d.n else f"{name} had none"
        parts.append(f"Failures, compared separately: the {side('policy', failed.policy)}, "
                     f"the {side('demonstrations', failed.human)}.")
    if c.phase is not None:
        parts.append(c.phase.text())
    causes, found = c.causes, findings(c.checks)
    gap_open = c.slower and math.isfinite(c.gap_s) and c.gap_s > 0
    if causes:
        items = []
        for cause in causes:
            share = share_text(cause, c.gap_s) if gap_open else ""
            items.append(cause.title + (f": {share}" if share else ""))
        head = "Likely causes of the gap" if gap_open else "It differs from the demonstrations"
        parts.append(f"{head}: " + "; ".join(items) + ".")
    if found:
        parts.append(("Also measured" if causes else "Measured differences") + ": " + "; ".join(found) + ".")
    if not causes and not found:
        if c.slower and c.phase is None:
            parts.append("No known cause and no single phase explains the gap (see the checks).")
        elif not c.slower and c.phase is None and c.speed is not None:
            parts.append(f"{NO_CAUSE}: nothing measured differs beyond its threshold.")
    return " ".join(parts)


def _speed_sentence(c: Comparison) -> str:
    if c.speed is None:
        who = "the policy" if like_for_like(c.policy) is None else "the demonstrations"
        return f"Their speed cannot be compared on successes: {who} has none."
    d = c.speed
    on = "on successes" if c.outcomes["human"].labelled and c.outcomes["policy"].labelled else "over the episodes"
    ratio = f"{d.ratio:.2f}× the demonstrations' duration (95% CI {d.ci_low:.2f}–{d.ci_high:.2f})"
    if c.fails_more:
        if c.slower:
            return f"It is slower as well, {on}: {ratio}, {c.gap_s:+.2f} s per episode."
        return f"Its successful episodes took {ratio}, {c.gap_s:+.2f} s per episode." if on == "on successes" \
            else f"Its episodes took {ratio}, {c.gap_s:+.2f} s per episode."
    if c.slower:
        return f"The policy is slower {on}: {ratio}, {c.gap_s:+.2f} s per episode."
    if c.faster:
        return f"The policy is faster {on}: {ratio}, {-c.gap_s:.2f} s less per episode."
    return f"The policy is not slower {on}: {ratio}."


def consistency_problems(c: Comparison) -> list[str]:
    """Where the verdict would contradict its own evidence (empty when it tells the truth)."""
    problems = []
    v = c.verdict
    if c.fails_more and (c.ok or "not slower" in v or "faster" in v):
        problems.append("a policy that succeeds less often is called ok, not slower or faster")
    if c.speed is None and c.ok:
        problems.append("speed not comparable on successes, yet ok")
    shares = [x.share_s for x in c.causes if x.share_s is not None]
    if shares and sum(shares) > max(c.gap_s, 0.0) + 1e-9:
        problems.append(f"cause shares add up to {sum(shares):.2f} s, more than the {c.gap_s:+.2f} s gap")
    for check in c.checks:
        if check.fired and check.title not in v:
            problems.append(f"{check.id} fires but the verdict does not name it")
        for crit in check.criteria:
            if not check.fired and crit.met and crit.finding and crit.finding not in v:
                problems.append(f"{check.id}: '{crit.finding}' crosses its threshold but is not named")
    if c.phase is not None and PHASE_WORDS[c.phase.phase] not in v:
        problems.append(f"the {c.phase.phase} phase dominates the gap but is not named")
    if NO_CAUSE in v and (c.slower or c.phase is not None or c.causes or findings(c.checks)):
        problems.append(f"'{NO_CAUSE}' beside evidence that crosses a threshold")
    return problems
