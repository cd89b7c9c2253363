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
  words (a policy without success: its episodes against the successful
  demonstrations). A phase that is uniformly stretched with the rest does not dominate,
  and idle at the episode's ends (the ``idle_ends`` check's evidence) is left
  out of reach and lift.
* Every check whose evidence crosses one of its thresholds is named: a check
  that fires by its title, one that only partly fires by its findings.
  "No cause found" is said only when nothing crosses a threshold, no phase
  dominates, the policy is not slower and it does not fail more (``ok``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from recordings.analysis.comparison import (
    PHASE_WORDS,
    Check,
    Comparison,
    Distribution,
    Outcome,
    PhaseFinding,
    findings,
    share_text,
)
from recordings.analysis.metrics import EpisodeMetrics

PHASES = ("reach", "grasp", "lift")
PHASE_GAP_SHARE = 0.5  # "accounts for most of the gap"
PHASE_RATIO = 1.5  # and is itself clearly longer than the demonstrations' (not just stretched with the rest)
IDLE_OF_PHASE = {"reach": "idle_start_s", "lift": "idle_end_s"}  # idle at the ends: the idle check's, not the phase's
NO_CAUSE = "No cause found"


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


def phase_means_of(items: Sequence[EpisodeMetrics]) -> dict[str, float]:
    """Mean seconds per phase (an episode without a phase adds 0 to it); zeros for no episodes."""
    if not items:
        return dict.fromkeys(PHASES, 0.0)
    return {ph: float(np.mean([m.values[f"{ph}_s"] if math.isfinite(m.values[f"{ph}_s"]) else 0.0
                               for m in items])) for ph in PHASES}


def _active_phase_means(items: Sequence[EpisodeMetrics]) -> dict[str, float]:
    """Like :func:`phase_means_of`, with the idle at the start left out of reach and at the end out of lift."""
    means = phase_means_of(items)
    for phase, key in IDLE_OF_PHASE.items():
        idle = [m.values[key] for m in items if math.isfinite(m.values[key])]
        means[phase] = max(means[phase] - (float(np.mean(idle)) if idle else 0.0), 0.0)
    return means


def dominant_phase(human: Sequence[EpisodeMetrics], policy: Sequence[EpisodeMetrics]) -> PhaseFinding | None:
    """The phase that accounts for most of a positive gap and is itself ≥ PHASE_RATIO × the human's.

    Successes against successes (:func:`like_for_like`); when the policy has no
    success, every policy episode against the demonstrations' successes.
    """
    h_like, p_like = like_for_like(human), like_for_like(policy)
    over_all = p_like is None
    if not h_like or not policy:
        return None
    p_set = list(policy) if over_all else p_like
    gap = _mean_duration(p_set) - _mean_duration(h_like)
    if not (math.isfinite(gap) and gap > 0):
        return None
    h, p = _active_phase_means(h_like), _active_phase_means(p_set)
    best = max(PHASES, key=lambda ph: p[ph] - h[ph])
    extra = p[best] - h[best]
    if extra >= PHASE_GAP_SHARE * gap and p[best] >= PHASE_RATIO * h[best]:
        return PhaseFinding(best, h[best], p[best], gap, over_all)
    return None


def _mean_duration(items: Sequence[EpisodeMetrics]) -> float:
    values = [m.values["duration_s"] for m in items if math.isfinite(m.values["duration_s"])]
    return float(np.mean(values)) if values else math.nan


def allot_shares(causes: Sequence[Check], gap: float) -> None:
    """Set each cause's ``share_s``: its estimate capped at what is left of a positive gap (largest first)."""
    positive = math.isfinite(gap) and gap > 0
    left = gap if positive else 0.0
    for cause in causes:
        if cause.explains_s is None or not math.isfinite(cause.explains_s) or not positive:
            cause.share_s = None
            continue
        cause.share_s = min(max(cause.explains_s, 0.0), left)
        left -= cause.share_s


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
        policy = _failures("the policy", "the policy's", failed.policy)
        human = _failures("the demonstrations", "the demonstrations'", failed.human)
        parts.append(f"Failures, compared separately: {policy}, {human}.")
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
        elif c.ok and c.phase is None:
            parts.append(f"{NO_CAUSE}: nothing measured differs beyond its threshold.")
        elif c.phase is None:  # it fails more, or has no success: that is the difference
            parts.append("Nothing else measured differs from the demonstrations beyond its threshold (see the "
                         "checks).")
    return " ".join(parts)


ON = {(True, True): "on successes", (False, True): "(its successes against every demonstration)",
      (True, False): "(every rollout against the successful demonstrations)", (False, False): "over every episode"}


def _failures(name: str, owner: str, d: Distribution) -> str:
    return f"{owner} {d.n} lasted {d.stat('mean'):.2f} s on average" if d.n else f"{name} had none"


def _speed_sentence(c: Comparison) -> str:
    if c.speed is None:
        none = [who for who, items in (("the policy", c.policy), ("the demonstrations", c.human))
                if like_for_like(items) is None]
        verb = "have" if len(none) > 1 else "has"
        return f"Their speed cannot be compared on successes: {' and '.join(none)} {verb} none."
    d = c.speed
    on = ON[c.outcomes["human"].labelled > 0, c.outcomes["policy"].labelled > 0]
    ratio = f"{d.ratio:.2f}× the demonstrations' duration (95% CI {d.ci_low:.2f}–{d.ci_high:.2f})"
    if c.fails_more:  # never "not slower" or "faster": only the numbers of its successes
        if c.slower:
            return f"It is slower as well, {on}: {ratio}, {c.gap_s:+.2f} s per episode."
        return f"Its successful episodes took {ratio}, {c.gap_s:+.2f} s per episode."
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
    if NO_CAUSE in v and (not c.ok or c.phase is not None or c.causes or findings(c.checks)):
        problems.append(f"'{NO_CAUSE}' beside evidence that crosses a threshold")
    return problems
