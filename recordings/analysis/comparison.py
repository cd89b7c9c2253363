"""What a human-vs-policy comparison holds, and its terminal text: plain data, no computing.

:mod:`recordings.analysis.compare` fills a :class:`Comparison` (metric
distributions, policy/human ratios with their CIs, success counts, the
like-with-like duration comparisons, the checks of the known causes) and
:mod:`recordings.analysis.verdict` decides what it says. The UI, the CLI and
the HTML report read these objects and only display them. No threads.

Invariants: a :class:`Check` fires exactly when its criteria hold (all, or any
for ``needs="any"``): the evidence lines a reader sees are the criteria the
decision was made from. ``share_s`` of the causes never add up to more than the
duration gap (:func:`recordings.analysis.verdict.allot_shares` sets them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recordings.analysis.metrics import METRIC_BY_KEY, METRIC_KEYS, PROFILE_POINTS, EpisodeMetrics, Metric

CI_LEVEL = 0.95
PHASE_WORDS = {"reach": "is slow to reach the object", "grasp": "hesitates at the grasp",
               "lift": "is slow to lift and finish"}


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
        """"4 of 20 (20%)", with the unlabelled ones mentioned."""
        if not self.labelled:
            return "not labelled"
        extra = f"; {self.unlabelled} more not labelled" if self.unlabelled else ""
        return f"{self.successes} of {self.labelled} ({self.rate:.0%}{extra})"

    def to_dict(self) -> dict[str, object]:
        return {"successes": self.successes, "failures": self.failures, "unlabelled": self.unlabelled,
                "rate": None if math.isnan(self.rate) else round(self.rate, 6)}


def success_lower(human: Outcome, policy: Outcome) -> bool:
    """The policy succeeds less often than the demonstrations (or fails at all when theirs is unknown)."""
    if not policy.labelled:
        return False
    if not human.labelled:
        return policy.failures > 0
    return policy.rate < human.rate


@dataclass(frozen=True)
class PhaseFinding:
    """A phase that accounts for most of the duration gap (of the successes, or of every policy episode against
    the demonstrations when the policy has no success: ``over_all``)."""

    phase: str
    human_s: float
    policy_s: float
    gap_s: float
    over_all: bool = False

    @property
    def extra_s(self) -> float:
        return self.policy_s - self.human_s

    def text(self) -> str:
        idle = {"reach": ", idle at the start left out", "lift": ", idle at the end left out"}.get(self.phase, "")
        gap = (f"the {self.gap_s:+.2f} s longer mean duration of every policy episode" if self.over_all
               else f"the {self.gap_s:+.2f} s gap")
        return (f"It {PHASE_WORDS[self.phase]}: {self.policy_s:.2f} s vs {self.human_s:.2f} s in the "
                f"{self.phase} phase{idle} ({self.extra_s:+.2f} s of {gap}).")

    def to_dict(self) -> dict[str, object]:
        return {"phase": self.phase, "human_s": round(self.human_s, 6), "policy_s": round(self.policy_s, 6),
                "extra_s": round(self.extra_s, 6), "gap_s": round(self.gap_s, 6), "over_all": self.over_all}


@dataclass
class Distribution:
    values: np.ndarray  # finite values only

    @property
    def n(self) -> int:
        return int(self.values.size)

    def stat(self, name: str) -> float:
        if not self.n:
            return math.nan
        if name == "mean":
            return float(np.mean(self.values))
        return float(np.percentile(self.values, {"median": 50, "p25": 25, "p75": 75, "min": 0, "max": 100}[name]))

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, **{k: _num(self.stat(k)) for k in ("mean", "median", "p25", "p75", "min", "max")},
                "values": [float(x) for x in self.values]}


@dataclass
class MetricComparison:
    key: str
    human: Distribution
    policy: Distribution
    ratio: float
    ci_low: float
    ci_high: float

    @property
    def metric(self) -> Metric:
        return METRIC_BY_KEY[self.key]

    def to_dict(self) -> dict[str, Any]:
        m = self.metric
        return {"key": self.key, "label": m.label, "unit": m.unit, "help": m.help, "human": self.human.to_dict(),
                "policy": self.policy.to_dict(), "ratio": _num(self.ratio), "ci": [_num(self.ci_low),
                                                                                 _num(self.ci_high)]}


@dataclass(frozen=True)
class Criterion:
    """One condition of a check: its evidence line (with the threshold it is held to) and whether it holds.

    ``finding`` is the difference in plain words, named in the verdict when the
    criterion holds even if the rest of its check does not (None for
    preconditions such as "the demos idle at their ends").
    """

    text: str
    met: bool
    finding: str | None = None


@dataclass
class Check:
    """One known cause of a slow policy: its criteria, whether they hold, and the numbers."""

    id: str
    title: str
    criteria: list[Criterion]
    fix: str
    threshold: str  # all its criteria's thresholds in one line (the report's "threshold" column)
    needs: str = "all"  # "all" criteria must hold, or "any" one
    context: list[str] = field(default_factory=list)  # evidence lines without a threshold
    explains_s: float | None = None  # rough seconds per episode this cause accounts for, its own estimate
    share_s: float | None = None  # its share of the gap: explains_s capped so all shares fit in the gap
    measured: dict[str, float] = field(default_factory=dict)

    @property
    def fired(self) -> bool:
        met = [c.met for c in self.criteria]
        return bool(met) and (all(met) if self.needs == "all" else any(met))

    @property
    def status(self) -> str:
        """"fires"; "partly" when a criterion that marks a difference holds; else "no"."""
        if self.fired:
            return "fires"
        return "partly" if any(c.met and c.finding for c in self.criteria) else "no"

    def status_text(self) -> str:
        """The status as a reader sees it: "partly (1 of 3 conditions)"; "not found (2 of 3 conditions hold)" when
        only preconditions (criteria that mark no difference) hold — never a bare "no" beside a crossed threshold."""
        met = sum(c.met for c in self.criteria)
        if self.status == "partly":
            return f"partly ({met} of {len(self.criteria)} conditions)"
        if self.status == "no" and met:
            return f"not found ({met} of {len(self.criteria)} conditions hold)"
        return self.status

    @property
    def evidence(self) -> list[str]:
        return [c.text for c in self.criteria] + list(self.context)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "fired": self.fired, "status": self.status,
                "criteria": [{"text": c.text, "met": c.met, "finding": c.finding} for c in self.criteria],
                "evidence": self.evidence, "fix": self.fix, "explains_s": _num(self.explains_s),
                "share_s": _num(self.share_s), "threshold": self.threshold,
                "measured": {k: _num(v) for k, v in self.measured.items()}}


@dataclass
class Comparison:
    labels: tuple[str, str]  # how the two sets were chosen (folders, globs, "by source in …")
    human: list[EpisodeMetrics]
    policy: list[EpisodeMetrics]
    skipped: dict[str, list[tuple[Path, str]]]
    metrics: dict[str, MetricComparison]  # over every episode of each set
    profiles: dict[str, dict[str, np.ndarray]]  # side -> median/p25/p75 over PROFILE_POINTS normalized times
    outcomes: dict[str, Outcome]  # side -> success counts
    speed: MetricComparison | None  # duration of the successes (like with like); None when not comparable
    failures: MetricComparison  # duration of the failures, reported apart
    phase: PhaseFinding | None  # a phase that accounts for most of the gap
    checks: list[Check]
    notes: list[str]
    seed: int
    resamples: int
    verdict: str = ""

    @property
    def slower(self) -> bool:
        """The successes' duration ratio's CI lies above 1."""
        return self.speed is not None and math.isfinite(self.speed.ci_low) and self.speed.ci_low > 1.0

    @property
    def faster(self) -> bool:
        return self.speed is not None and math.isfinite(self.speed.ci_high) and self.speed.ci_high < 1.0

    @property
    def fails_more(self) -> bool:
        """The policy succeeds less often than the demonstrations (or fails at all when theirs is unknown)."""
        return success_lower(self.outcomes["human"], self.outcomes["policy"])

    @property
    def ok(self) -> bool:
        """Green: the speed is comparable on successes, the policy is not slower and does not fail more."""
        return self.speed is not None and not self.slower and not self.fails_more

    @property
    def causes(self) -> list[Check]:
        """The checks that fired, largest estimated effect first."""
        fired = [c for c in self.checks if c.fired]
        return sorted(fired, key=lambda c: -(c.explains_s if c.explains_s is not None else -1.0))

    @property
    def gap_s(self) -> float:
        """Mean duration of the policy's successes minus the demonstrations' (NaN when not comparable)."""
        if self.speed is None:
            return math.nan
        return self.speed.policy.stat("mean") - self.speed.human.stat("mean")

    @property
    def policy_speeds(self) -> dict[float, int]:
        """Execution speed -> how many of the policy's episodes ran at it (from their notes), slowest first."""
        speeds: dict[float, int] = {}
        for m in self.policy:
            speeds[m.speed] = speeds.get(m.speed, 0) + 1
        return dict(sorted(speeds.items()))

    @property
    def speed_text(self) -> str:
        """How fast the policy's chunks ran, e.g. "chunks executed at 1× (2 of 6), 1.3× (4 of 6) their planned
        speed"; empty when every episode ran them as planned."""
        speeds = self.policy_speeds
        if set(speeds) <= {1.0}:
            return ""
        n = len(self.policy)
        return "chunks executed at " + ", ".join(f"{s:g}× ({k} of {n})" for s, k in speeds.items()) + \
            " their planned speed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "sets": {"human": self.labels[0], "policy": self.labels[1]},
            "policy_speeds": {f"{s:g}": k for s, k in self.policy_speeds.items()},
            "episodes": {"human": [m.to_dict() for m in self.human], "policy": [m.to_dict() for m in self.policy]},
            "skipped": {side: [{"path": str(p), "reason": r} for p, r in items] for side, items in self.skipped.items()},
            "metrics": [self.metrics[k].to_dict() for k in METRIC_KEYS],
            "profiles": {"normalized_time": np.linspace(0, 1, PROFILE_POINTS).round(4).tolist(),
                         **{side: {k: [round(float(x), 3) for x in v] for k, v in prof.items()}
                            for side, prof in self.profiles.items()}},
            "success": {side: o.to_dict() for side, o in self.outcomes.items()},
            "speed_on_successes": None if self.speed is None else self.speed.to_dict(),
            "failures": self.failures.to_dict(),
            "slower": self.slower,
            "faster": self.faster,
            "fails_more": self.fails_more,
            "ok": self.ok,
            "gap_s": _num(self.gap_s),
            "phase": None if self.phase is None else self.phase.to_dict(),
            "verdict": self.verdict,
            "causes": [c.id for c in self.causes],
            "findings": findings(self.checks),
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "ci_level": CI_LEVEL},
        }

    def text(self) -> str:
        """The terminal summary: sets, metrics table, verdict, causes with evidence and fixes, every check."""
        lines = [f"human:  {len(self.human)} episode(s) from {self.labels[0]}",
                 f"policy: {len(self.policy)} episode(s) from {self.labels[1]}"]
        if self.speed_text:
            lines.append(f"        {self.speed_text}")
        for side, items in self.skipped.items():
            for path, reason in items:
                lines.append(f"  skipped ({side}) {path.name}: {reason}")
        lines.append("")
        rows = [("metric", "human mean", "policy mean", "policy/human [95% CI]")]
        for _, label, mc in self.duration_rows():
            rows.append((label, fmt_value(mc.key, mc.human.stat("mean")), fmt_value(mc.key, mc.policy.stat("mean")),
                         fmt_ratio(mc)))
        for key in METRIC_KEYS:
            mc = self.metrics[key]
            if not mc.human.n and not mc.policy.n:
                continue
            m = mc.metric
            rows.append((f"{m.label}" + (f" ({m.unit})" if m.unit else ""), fmt_value(key, mc.human.stat("mean")),
                         fmt_value(key, mc.policy.stat("mean")), fmt_ratio(mc)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        lines += ["", self.verdict]
        for i, cause in enumerate(self.causes, 1):
            share = share_text(cause, self.gap_s) if self.slower else ""
            lines.append(f"\n{i}. {cause.title}" + (f": {share}" if share else ""))
            lines += [f"   - {e}" for e in cause.evidence]
            lines.append(f"   fix: {cause.fix}")
        lines.append("\nchecks:")
        for check in self.checks:
            lines.append(f"  {check.title}: {check.status_text()}")
            lines += [f"    - {e}" for e in check.evidence]
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def duration_rows(self) -> list[tuple[str, str, MetricComparison]]:
        """The like-with-like duration rows as ``(key, label, comparison)``: ``"speed"`` (the successes), and
        ``"failures"`` when there are any."""
        rows = []
        if self.speed is not None:
            on = "successes" if self.outcomes["human"].labelled and self.outcomes["policy"].labelled else "compared"
            rows.append(("speed", f"duration, {on} (s)", self.speed))
        if self.failures.human.n or self.failures.policy.n:
            rows.append(("failures", "duration, failures (s)", self.failures))
        return rows


def _num(v: float | None) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def fmt_value(key: str, value: float) -> str:
    """A metric value in its display format ("–" when not defined)."""
    if value is None or not math.isfinite(value):
        return "–"
    return format(value, METRIC_BY_KEY[key].fmt)


def fmt_ratio(mc: MetricComparison) -> str:
    if not math.isfinite(mc.ratio):
        return "–"
    if not (math.isfinite(mc.ci_low) and math.isfinite(mc.ci_high)):
        return f"{mc.ratio:.2f}×"
    return f"{mc.ratio:.2f}× [{mc.ci_low:.2f}–{mc.ci_high:.2f}]"


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
