"""Human demos vs policy rollouts: metric distributions, ratios with bootstrap CIs, and a diagnosis.

"Why does my policy move slower than I did?" :func:`compare_sets` computes the
metrics of :mod:`recordings.analysis.metrics` for both sets, the policy/human ratio of
each metric's mean with a seeded bootstrap confidence interval, and then checks
the known causes of a slow policy, each against its measured evidence.

The policy counts as *slower* when the 95 % CI of the duration ratio lies above
1. Only then are causes reported; each check fires only when its evidence passes
its threshold (the constants below; the numbers are in every check's evidence):

(a) ``idle_ends`` — the demos start/end with long idle periods and the policy
    learned to idle: the demos idle at their ends for ≥ ``IDLE_ENDS_MIN_S`` and
    ≥ ``IDLE_ENDS_MIN_SHARE`` of their duration (means), the policy idles at its
    ends at least as long, and its extra idle at the ends is ≥
    ``IDLE_GAP_SHARE`` of the duration gap. Fix: trim the demos.
(b) ``rate_mismatch`` — the achieved (or nominal) control rate of the rollouts
    differs from the demos' by more than ``RATE_MISMATCH``.
(c) ``starvation`` — the policy waited for inference: starved ticks ≥
    ``STARVED_SHARE_MIN`` of its ticks, or a stall of ≥ ``STALL_MIN_S``.
(d) ``small_actions`` — the policy's commanded joint step per tick while
    moving (starved, killed and idle ticks excluded) is smaller: the upper end of
    the ratio's CI is below ``ACTION_SHRINK``; the per-phase ratios (reach, lift)
    are the evidence that it holds at comparable phases. Per tick, not per
    second: a policy that repeats the human's per-tick steps at a lower rate is
    a rate mismatch (b), not a shrunken action.
(e) ``smoothing`` — actions smoothed by ensembling: the human's commands have
    high-frequency content (share ≥ ``SMOOTH_HF_MIN``) and the policy's share is
    ≤ ``SMOOTH_HF_RATIO`` of it, its peaks are cut — peak over moving speed ≤
    ``SMOOTH_PEAK_RATIO`` of the human's (a policy that is uniformly slower keeps
    that ratio) — over a path length within ``PATH_SIMILAR`` of the human's.
(f) ``jitter`` — the opposite: the policy's commands zig-zag (noisy predictions,
    or jumps where one chunk hands over to the next): its high-frequency share is
    ≥ ``JITTER_HF_RATIO`` × the human's and its path is longer, the lower end of
    the path-length ratio's CI ≥ ``JITTER_PATH``. The extra path, covered at the
    policy's own moving speed, is the time it accounts for.

When the policy is slower and no check fires, the verdict says so ("no known
cause found") and lists what was checked.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from recordings.format import SUFFIX
from recordings.library import episode_files
from recordings.analysis.metrics import METRIC_BY_KEY, METRIC_KEYS, PROFILE_POINTS, EpisodeMetrics, Metric, metrics_of

RESAMPLES = 2000
SEED = 0
CI_LEVEL = 0.95

IDLE_ENDS_MIN_S = 0.5
IDLE_ENDS_MIN_SHARE = 0.10
IDLE_GAP_SHARE = 0.25
RATE_MISMATCH = 0.10
STARVED_SHARE_MIN = 0.05
STALL_MIN_S = 0.3
ACTION_SHRINK = 0.85
SMOOTH_HF_MIN = 0.01
SMOOTH_HF_RATIO = 0.5
SMOOTH_PEAK_RATIO = 0.85
PATH_SIMILAR = (0.8, 1.25)
JITTER_HF_RATIO = 2.0
JITTER_PATH = 1.10
FEW_EPISODES = 3

THRESHOLDS = {
    "slower": "95% CI of the policy/human duration ratio above 1",
    "idle_ends": f"demos idle at their ends ≥ {IDLE_ENDS_MIN_S:g} s and ≥ {IDLE_ENDS_MIN_SHARE:.0%} of their duration; "
                 f"policy idles at its ends at least as long; its extra idle ≥ {IDLE_GAP_SHARE:.0%} of the gap",
    "rate_mismatch": f"achieved or nominal control rates differ by more than {RATE_MISMATCH:.0%}",
    "starvation": f"starved ticks ≥ {STARVED_SHARE_MIN:.0%} of policy ticks, or a stall ≥ {STALL_MIN_S:g} s",
    "small_actions": f"upper end of the 95% CI of the per-tick joint-step ratio (active ticks) below {ACTION_SHRINK:g}",
    "smoothing": f"human high-frequency share ≥ {SMOOTH_HF_MIN:.0%} and the policy's ≤ {SMOOTH_HF_RATIO:g}× it, "
                 f"peak/moving speed ≤ {SMOOTH_PEAK_RATIO:g}× the human's, path length within "
                 f"{PATH_SIMILAR[0]:g}–{PATH_SIMILAR[1]:g}×",
    "jitter": f"policy high-frequency share ≥ {JITTER_HF_RATIO:g}× the human's and the lower end of the 95% CI of "
              f"the path-length ratio ≥ {JITTER_PATH:g}",
}


# -- choosing the episodes -------------------------------------------------------------------------
def resolve_set(spec: str | Path) -> list[Path]:
    """The episode files a ``DIR_OR_GLOB`` names: a folder's episodes, one file, or a glob's ``.h5`` matches."""
    text = os.path.expanduser(str(spec))
    path = Path(text)
    if path.is_dir():
        files = episode_files(path)
    elif path.is_file():
        files = [path]
    else:
        files = sorted(Path(p) for p in glob.glob(text, recursive=True)
                       if p.endswith(SUFFIX) and Path(p).is_file() and not Path(p).name.startswith("."))
    if not files:
        raise ValueError(f"no episodes in {spec}" if path.is_dir() else f"no episode files match {spec}")
    return files


# -- statistics ------------------------------------------------------------------------------------
def bootstrap_ratio(human: np.ndarray, policy: np.ndarray, *, resamples: int = RESAMPLES,
                    rng: np.random.Generator | None = None) -> tuple[float, float, float]:
    """``mean(policy) / mean(human)`` and its percentile-bootstrap CI (each set resampled on its own).

    NaN when either set is empty or the human mean is 0.
    """
    h = np.asarray(human, dtype=np.float64)
    p = np.asarray(policy, dtype=np.float64)
    if h.size == 0 or p.size == 0 or np.mean(h) == 0:
        return math.nan, math.nan, math.nan
    ratio = float(np.mean(p) / np.mean(h))
    rng = rng or np.random.default_rng(SEED)
    hm = h[rng.integers(0, h.size, (resamples, h.size))].mean(axis=1)
    pm = p[rng.integers(0, p.size, (resamples, p.size))].mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot = pm / hm
    boot = boot[np.isfinite(boot)]
    if boot.size == 0:
        return ratio, math.nan, math.nan
    alpha = (1.0 - CI_LEVEL) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    return ratio, float(lo), float(hi)


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


@dataclass
class Check:
    """One known cause of a slow policy: whether its evidence passed the threshold, and the numbers."""

    id: str
    title: str
    fired: bool
    evidence: list[str]
    fix: str
    explains_s: float | None = None  # rough seconds per episode this cause accounts for
    measured: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "fired": self.fired, "evidence": list(self.evidence),
                "fix": self.fix, "explains_s": _num(self.explains_s), "threshold": THRESHOLDS[self.id],
                "measured": {k: _num(v) for k, v in self.measured.items()}}


@dataclass
class Comparison:
    labels: tuple[str, str]  # how the two sets were chosen (folders, globs, "by source in …")
    human: list[EpisodeMetrics]
    policy: list[EpisodeMetrics]
    skipped: dict[str, list[tuple[Path, str]]]
    metrics: dict[str, MetricComparison]
    profiles: dict[str, dict[str, np.ndarray]]  # side -> median/p25/p75 over PROFILE_POINTS normalized times
    slower: bool
    faster: bool
    verdict: str
    checks: list[Check]
    notes: list[str]
    seed: int = SEED
    resamples: int = RESAMPLES

    @property
    def causes(self) -> list[Check]:
        """The checks that fired, largest estimated effect first (only when the policy is slower)."""
        if not self.slower:
            return []
        fired = [c for c in self.checks if c.fired]
        return sorted(fired, key=lambda c: -(c.explains_s if c.explains_s is not None else -1.0))

    @property
    def gap_s(self) -> float:
        d = self.metrics["duration_s"]
        return d.policy.stat("mean") - d.human.stat("mean")

    def to_dict(self) -> dict[str, Any]:
        return {
            "sets": {"human": self.labels[0], "policy": self.labels[1]},
            "episodes": {"human": [m.to_dict() for m in self.human], "policy": [m.to_dict() for m in self.policy]},
            "skipped": {side: [{"path": str(p), "reason": r} for p, r in items] for side, items in self.skipped.items()},
            "metrics": [self.metrics[k].to_dict() for k in METRIC_KEYS],
            "profiles": {"normalized_time": np.linspace(0, 1, PROFILE_POINTS).round(4).tolist(),
                         **{side: {k: [round(float(x), 3) for x in v] for k, v in prof.items()}
                            for side, prof in self.profiles.items()}},
            "slower": self.slower,
            "faster": self.faster,
            "gap_s": _num(self.gap_s),
            "verdict": self.verdict,
            "causes": [c.id for c in self.causes],
            "checks": [c.to_dict() for c in self.checks],
            "notes": list(self.notes),
            "bootstrap": {"resamples": self.resamples, "seed": self.seed, "ci_level": CI_LEVEL},
        }

    def text(self) -> str:
        """The terminal summary: sets, metrics table, verdict, causes with evidence and fixes."""
        lines = [f"human:  {len(self.human)} episode(s) from {self.labels[0]}",
                 f"policy: {len(self.policy)} episode(s) from {self.labels[1]}"]
        for side, items in self.skipped.items():
            for path, reason in items:
                lines.append(f"  skipped ({side}) {path.name}: {reason}")
        lines.append("")
        rows = [("metric", "human mean", "policy mean", "policy/human [95% CI]")]
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
            lines.append(f"\n{i}. {cause.title}" + (f" (≈ {cause.explains_s:.1f} s per episode)"
                                                     if cause.explains_s is not None else ""))
            lines += [f"   - {e}" for e in cause.evidence]
            lines.append(f"   fix: {cause.fix}")
        if self.slower and not self.causes:
            lines.append("\nchecked:")
            for check in self.checks:
                lines.append(f"  {check.title}: " + "; ".join(check.evidence))
        for note in self.notes:
            lines.append(f"note: {note}")
        return "\n".join(lines)


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


# -- the comparison --------------------------------------------------------------------------------
def compare_sets(human: Sequence[str | Path], policy: Sequence[str | Path], *,
                 labels: tuple[str, str] = ("human", "policy"), seed: int = SEED, resamples: int = RESAMPLES,
                 progress: Callable[[int, int, str], None] | None = None) -> Comparison:
    """Compare two lists of episode files (human demos first). Raises ValueError if a side has no readable episode."""
    paths = [Path(p) for p in (*human, *policy)]
    done, failed = metrics_of(paths, progress)
    by_path = {m.path: m for m in done}
    reasons = dict(failed)
    h = [by_path[Path(p)] for p in human if Path(p) in by_path]
    p = [by_path[Path(q)] for q in policy if Path(q) in by_path]
    skipped = {"human": [(Path(x), reasons[Path(x)]) for x in human if Path(x) in reasons],
               "policy": [(Path(x), reasons[Path(x)]) for x in policy if Path(x) in reasons]}
    notes = []
    for side, items, want in (("human", h, "human"), ("policy", p, "policy")):
        odd = [m.name for m in items if m.source != want]
        if odd:
            notes.append(f"{len(odd)} episode(s) of the {side} set are not mostly {want}-driven: "
                         + ", ".join(odd[:5]) + ("…" if len(odd) > 5 else ""))
    return compare_metrics(h, p, labels=labels, skipped=skipped, notes=notes, seed=seed, resamples=resamples)


DEMONSTRATORS = ("human", "scripted")
"""Episodes that demonstrate the task: a human's, or a scripted expert's (recorded as such since format 2)."""


def compare_by_source(folder: str | Path, *, seed: int = SEED, resamples: int = RESAMPLES,
                      progress: Callable[[int, int, str], None] | None = None) -> Comparison:
    """Split one dataset folder into demonstrations (mostly human or scripted) and mostly-policy episodes."""
    folder = Path(folder)
    files = episode_files(folder)
    if not files:
        raise ValueError(f"no episodes in {folder}")
    done, failed = metrics_of(files, progress)
    h = [m for m in done if m.source in DEMONSTRATORS]
    p = [m for m in done if m.source == "policy"]
    mixed = [(m.path, f"mixed sources ({_mix_text(m.source_mix)})") for m in done if m.source == "mixed"]
    skipped = {"human": [], "policy": [], "unassigned": [*failed, *mixed]}
    kinds = {k: sum(m.source == k for m in h) for k in DEMONSTRATORS}
    demos = ", ".join(f"{n} {k}" for k, n in kinds.items() if n) or "none"
    return compare_metrics(h, p, labels=(f"{folder} (by source: demonstrations {demos})", f"{folder} (by source)"),
                           skipped=skipped, notes=[], seed=seed, resamples=resamples)


def _mix_text(mix: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in mix.items())


def compare_metrics(human: list[EpisodeMetrics], policy: list[EpisodeMetrics], *, labels: tuple[str, str],
                    skipped: dict[str, list[tuple[Path, str]]] | None = None, notes: list[str] | None = None,
                    seed: int = SEED, resamples: int = RESAMPLES) -> Comparison:
    """The comparison of already computed episode metrics."""
    if not human or not policy:
        missing = [side for side, items in (("human", human), ("policy", policy)) if not items]
        raise ValueError(f"no readable {' or '.join(missing)} episodes to compare")
    notes = list(notes or [])
    if len(human) < FEW_EPISODES or len(policy) < FEW_EPISODES:
        notes.append(f"fewer than {FEW_EPISODES} episodes in a set: the confidence intervals mean little")
    metrics = {}
    for i, key in enumerate(METRIC_KEYS):
        hv = _values(human, key)
        pv = _values(policy, key)
        ratio, lo, hi = bootstrap_ratio(hv, pv, resamples=resamples, rng=np.random.default_rng([seed, i]))
        metrics[key] = MetricComparison(key, Distribution(hv), Distribution(pv), ratio, lo, hi)
    profiles = {"human": _profile_bands(human), "policy": _profile_bands(policy)}
    dur = metrics["duration_s"]
    slower = math.isfinite(dur.ci_low) and dur.ci_low > 1.0
    faster = math.isfinite(dur.ci_high) and dur.ci_high < 1.0
    checks = _checks(metrics, human, policy)
    comparison = Comparison(labels=labels, human=human, policy=policy, skipped=skipped or {}, metrics=metrics,
                            profiles=profiles, slower=slower, faster=faster, verdict="", checks=checks, notes=notes,
                            seed=seed, resamples=resamples)
    comparison.verdict = _verdict(comparison)
    return comparison


def _values(items: list[EpisodeMetrics], key: str) -> np.ndarray:
    v = np.array([m.values.get(key, math.nan) for m in items], dtype=np.float64)
    return v[np.isfinite(v)]


def _profile_bands(items: list[EpisodeMetrics]) -> dict[str, np.ndarray]:
    stack = np.array([m.profile for m in items], dtype=np.float64)
    return {"median": np.median(stack, axis=0), "p25": np.percentile(stack, 25, axis=0),
            "p75": np.percentile(stack, 75, axis=0)}


def _verdict(c: Comparison) -> str:
    dur = c.metrics["duration_s"]
    ratio = f"{dur.ratio:.2f}× the human's duration (95% CI {dur.ci_low:.2f}–{dur.ci_high:.2f})"
    if not c.slower:
        if c.faster:
            return f"The policy is faster than the human: {ratio}, {-c.gap_s:.1f} s less per episode. No cause found."
        return f"The policy is not slower than the human: {ratio}. No cause found."
    head = f"The policy is slower: {ratio}, {c.gap_s:+.1f} s per episode."
    causes = c.causes
    if not causes:
        return head + " No cause found: none of the known causes shows in the data (see the checks)."
    return head + " Likely cause" + ("s" if len(causes) > 1 else "") + ": " + "; ".join(x.title for x in causes) + "."


def _m(items: list[EpisodeMetrics], key: str) -> float:
    v = _values(items, key)
    return float(np.mean(v)) if v.size else math.nan


def _checks(metrics: dict[str, MetricComparison], human: list[EpisodeMetrics],
            policy: list[EpisodeMetrics]) -> list[Check]:
    gap = _m(policy, "duration_s") - _m(human, "duration_s")
    p_active = _m(policy, "duration_s") - _m(policy, "idle_s")
    return [_check_idle(human, policy, gap), _check_rate(human, policy, p_active), _check_starvation(policy),
            _check_actions(metrics, p_active), _check_smoothing(metrics, human, policy),
            _check_jitter(metrics, policy)]


def _check_idle(human: list[EpisodeMetrics], policy: list[EpisodeMetrics], gap: float) -> Check:
    h_start, h_end = _m(human, "idle_start_s"), _m(human, "idle_end_s")
    p_start, p_end = _m(policy, "idle_start_s"), _m(policy, "idle_end_s")
    h_ends, p_ends = h_start + h_end, p_start + p_end
    h_share = h_ends / _m(human, "duration_s") if _m(human, "duration_s") > 0 else math.nan
    extra = p_ends - h_ends
    fired = (h_ends >= IDLE_ENDS_MIN_S and h_share >= IDLE_ENDS_MIN_SHARE and p_ends >= h_ends
             and gap > 0 and extra >= IDLE_GAP_SHARE * gap)
    evidence = [
        f"demos idle {h_start:.2f} s at the start and {h_end:.2f} s at the end ({h_share:.0%} of their duration)",
        f"policy idles {p_start:.2f} s at the start and {p_end:.2f} s at the end: {extra:+.2f} s per episode "
        f"of a {gap:+.2f} s duration gap",
    ]
    return Check("idle_ends", "idle frames at the demos' ends (the policy learned to wait)", fired, evidence,
                 "trim the idle start and end of every demo (Review tab trim handles, or "
                 "`teleop-app episodes trim FILE --start S --end E`), then retrain",
                 explains_s=max(extra, 0.0) if math.isfinite(extra) else None,
                 measured={"human_idle_start_s": h_start, "human_idle_end_s": h_end, "human_idle_ends_share": h_share,
                           "policy_idle_start_s": p_start, "policy_idle_end_s": p_end, "gap_s": gap})


def _check_rate(human: list[EpisodeMetrics], policy: list[EpisodeMetrics], p_active: float) -> Check:
    h_rate = float(np.median(_values(human, "rate_hz"))) if _values(human, "rate_hz").size else math.nan
    p_rate = float(np.median(_values(policy, "rate_hz"))) if _values(policy, "rate_hz").size else math.nan
    h_nom = float(np.median(_values(human, "rate_nominal_hz"))) if _values(human, "rate_nominal_hz").size else math.nan
    p_nom = float(np.median(_values(policy, "rate_nominal_hz"))) if _values(policy, "rate_nominal_hz").size \
        else math.nan
    achieved = p_rate / h_rate if h_rate > 0 else math.nan
    nominal = p_nom / h_nom if h_nom > 0 else math.nan
    fired = any(math.isfinite(r) and abs(r - 1.0) > RATE_MISMATCH for r in (achieved, nominal))
    explains = p_active * (1.0 - achieved) if fired and math.isfinite(achieved) and achieved < 1 else None
    evidence = [f"demos recorded at {h_rate:.1f} Hz (nominal {h_nom:.0f} Hz), rollouts ran at {p_rate:.1f} Hz "
                f"(nominal {p_nom:.0f} Hz): {achieved:.2f}× the demos' rate"]
    return Check("rate_mismatch", "control-rate mismatch between recording and rollout", fired, evidence,
                 "run the policy at the rate the demos were recorded at (the rig's control rate), or export the "
                 "training data at the rollout rate (`teleop-app export … --fps`) and retrain",
                 explains_s=explains, measured={"human_rate_hz": h_rate, "policy_rate_hz": p_rate,
                                                "human_nominal_hz": h_nom, "policy_nominal_hz": p_nom})


def _check_starvation(policy: list[EpisodeMetrics]) -> Check:
    share = _m(policy, "starved_share")
    stall = float(np.max(_values(policy, "longest_stall_s"))) if _values(policy, "longest_stall_s").size else math.nan
    starved_s = _m(policy, "starved_s")
    waits = _m(policy, "inference_waits")
    fired = (math.isfinite(share) and share >= STARVED_SHARE_MIN) or (math.isfinite(stall) and stall >= STALL_MIN_S)
    if math.isfinite(share):
        mean_wait = starved_s / waits if waits else 0.0
        evidence = [f"{share:.1%} of policy ticks had no action ready (the last target was held): "
                    f"{starved_s:.2f} s per episode",
                    f"{waits:.1f} inference waits per episode, {mean_wait:.2f} s on average; longest stall "
                    f"{stall:.2f} s"]
    else:
        evidence = ["no policy ticks in the policy set: starvation cannot be measured"]
    return Check("starvation", "starvation while waiting for inference", fired, evidence,
                 "request the next chunk before the current one runs out (async strategy), use longer chunks or "
                 "execute more of each chunk, or make inference faster (smaller images, a GPU policy server)",
                 explains_s=starved_s if fired and math.isfinite(starved_s) else None,
                 measured={"starved_share": share, "longest_stall_s": stall, "starved_s": starved_s,
                           "inference_waits": waits})


def _check_actions(metrics: dict[str, MetricComparison], p_active: float) -> Check:
    mc = metrics["action_step_rad"]
    reach, lift = metrics["action_step_reach_rad"], metrics["action_step_lift_rad"]
    per_s = metrics["action_speed_rad_s"]
    fired = math.isfinite(mc.ci_high) and mc.ci_high < ACTION_SHRINK
    evidence = [f"commanded joint step per tick while moving: policy {fmt_value(mc.key, mc.policy.stat('mean'))} vs "
                f"human {fmt_value(mc.key, mc.human.stat('mean'))} rad = {fmt_ratio(mc)}",
                f"at comparable phases: reach {fmt_ratio(reach)}, lift {fmt_ratio(lift)}; per second "
                f"{fmt_ratio(per_s)}"]
    explains = p_active * (1.0 - mc.ratio) if fired and math.isfinite(p_active) else None
    return Check("small_actions", "shrunken action magnitudes (smaller steps than the human's)", fired, evidence,
                 "check the action normalization statistics and the action unit/scale used in training vs rollout; "
                 "with a tokenized head check the bin range; for averaged multimodal demos consider a chunked or "
                 "generative action head; more demos of the fast motion help",
                 explains_s=explains, measured={"ratio": mc.ratio, "ci_low": mc.ci_low, "ci_high": mc.ci_high,
                                                "reach_ratio": reach.ratio, "lift_ratio": lift.ratio})


def _crest(items: list[EpisodeMetrics]) -> float:
    """Mean peak speed over mean speed while moving: how peaky the motion is."""
    active = _m(items, "speed_active_mm_s")
    return _m(items, "speed_peak_mm_s") / active if active > 0 else math.nan


def _check_smoothing(metrics: dict[str, MetricComparison], human: list[EpisodeMetrics],
                     policy: list[EpisodeMetrics]) -> Check:
    hf, peak, path = metrics["action_hf_share"], metrics["speed_peak_mm_s"], metrics["path_length_m"]
    h_hf = hf.human.stat("mean")
    h_crest, p_crest = _crest(human), _crest(policy)
    crest = p_crest / h_crest if h_crest > 0 else math.nan
    fired = (math.isfinite(h_hf) and h_hf >= SMOOTH_HF_MIN and math.isfinite(hf.ratio) and hf.ratio <= SMOOTH_HF_RATIO
             and math.isfinite(crest) and crest <= SMOOTH_PEAK_RATIO and math.isfinite(path.ratio)
             and PATH_SIMILAR[0] <= path.ratio <= PATH_SIMILAR[1])
    evidence = [f"high-frequency share of commanded joint velocity: policy {fmt_value(hf.key, hf.policy.stat('mean'))}"
                f" vs human {fmt_value(hf.key, h_hf)} ({fmt_ratio(hf)})",
                f"peak over moving speed: policy {p_crest:.2f} vs human {h_crest:.2f} ({crest:.2f}×); peak speed "
                f"{fmt_ratio(peak)}, path length {fmt_ratio(path)}"]
    return Check("smoothing", "actions smoothed by ensembling (lower peaks over a similar path)", fired, evidence,
                 "weight newer predictions more in the temporal ensemble (larger decay), or execute chunks "
                 "open-loop / with a short async blend instead of a long ensemble",
                 measured={"hf_ratio": hf.ratio, "crest_ratio": crest, "peak_ratio": peak.ratio,
                           "path_ratio": path.ratio})


def _check_jitter(metrics: dict[str, MetricComparison], policy: list[EpisodeMetrics]) -> Check:
    hf, path = metrics["action_hf_share"], metrics["path_length_m"]
    fired = (math.isfinite(hf.ratio) and hf.ratio >= JITTER_HF_RATIO and math.isfinite(path.ci_low)
             and path.ci_low >= JITTER_PATH)
    extra_m = path.policy.stat("mean") - path.human.stat("mean")
    moving = _m(policy, "speed_active_mm_s")
    explains = extra_m * 1000.0 / moving if fired and moving > 0 else None
    evidence = [f"high-frequency share of commanded joint velocity: policy {fmt_value(hf.key, hf.policy.stat('mean'))}"
                f" vs human {fmt_value(hf.key, hf.human.stat('mean'))} ({fmt_ratio(hf)})",
                f"end-effector path: policy {path.policy.stat('mean'):.3f} m vs human {path.human.stat('mean'):.3f} m "
                f"({fmt_ratio(path)})"]
    return Check("jitter", "jittery actions (a zig-zag path longer than the human's)", fired, evidence,
                 "blend where chunks hand over (async with a weighted blend, or a temporal ensemble), check that each "
                 "chunk starts from the measured state, and train longer or on more demos if single predictions are "
                 "noisy", explains_s=explains,
                 measured={"hf_ratio": hf.ratio, "path_ratio": path.ratio, "path_ci_low": path.ci_low})
