"""Human demos vs policy rollouts: metric distributions, ratios with bootstrap CIs, and a diagnosis.

"Why does my policy move slower than I did?" :func:`compare_sets` computes the
metrics of :mod:`recordings.analysis.metrics` for both sets, the policy/human ratio of
each metric's mean with a seeded bootstrap confidence interval, and then checks
the known causes of a slow policy, each against its measured evidence. The
verdict built from them (success first, speed on successes, causes within the
gap, a dominant phase) follows the rules of :mod:`recordings.analysis.verdict`.

The policy counts as *slower* when the 95 % CI of the duration ratio of the
successes (like with like) lies above 1. Each check is a list of criteria; each
criterion's evidence line is printed with the threshold it is held to (the
constants below), so the text and the decision have one source. A check
*fires* when its criteria hold (all of them, or any for ``rate_mismatch`` and
``starvation``); a check that fires is named whether or not the policy is
slower, and a criterion that marks a measured difference (its *finding*) is
named even when the rest of its check does not hold:

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
    high-frequency content (share ≥ ``HF_MIN``) and the policy's share is
    ≤ ``SMOOTH_HF_RATIO`` of it, its peaks are cut — peak over moving speed ≤
    ``SMOOTH_PEAK_RATIO`` of the human's (a policy that is uniformly slower keeps
    that ratio) — over a path length within ``PATH_SIMILAR`` of the human's.
(f) ``jitter`` — the opposite: the policy's commands zig-zag (noisy predictions,
    or jumps where one chunk hands over to the next): its high-frequency share is
    ≥ ``JITTER_HF_RATIO`` × the human's and ≥ ``HF_MIN`` (less is noise-level
    content), and its path is longer: ≥ ``PATH_LONGER`` × the human's with the
    CI above 1. The extra path, covered at the policy's own moving speed, is the
    time it accounts for.

Why these thresholds: a 2× (or ½×) change of a spectral share and a 15 % longer
path are differences well outside the scatter between one operator's repeats
of a task, and requiring the path ratio's CI to exclude 1 keeps small sets from
crossing it by chance.

Plain Python, no threads of its own (the Compare tab calls it from a worker).
Invariant: :func:`compare_metrics` never returns a comparison whose verdict
contradicts its evidence (:func:`recordings.analysis.verdict.consistency_problems`);
if it would, that is a bug, and it raises RuntimeError naming the contradiction.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from recordings.format import SUFFIX
from recordings.library import episode_files
from recordings.analysis.comparison import (
    CI_LEVEL,
    Check,
    Comparison,
    Criterion,
    Distribution,
    MetricComparison,
    fmt_ratio,
    fmt_value,
)
from recordings.analysis.metrics import METRIC_KEYS, EpisodeMetrics, metrics_of
from recordings.analysis.verdict import (
    allot_shares,
    consistency_problems,
    dominant_phase,
    failures_of,
    like_for_like,
    outcome_of,
    verdict_text,
)

RESAMPLES = 2000
SEED = 0

IDLE_ENDS_MIN_S = 0.5
IDLE_ENDS_MIN_SHARE = 0.10
IDLE_GAP_SHARE = 0.25
RATE_MISMATCH = 0.10
STARVED_SHARE_MIN = 0.05
STALL_MIN_S = 0.3
ACTION_SHRINK = 0.85
HF_MIN = 0.01
SMOOTH_HF_RATIO = 0.5
SMOOTH_PEAK_RATIO = 0.85
PATH_SIMILAR = (0.8, 1.25)
JITTER_HF_RATIO = 2.0
PATH_LONGER = 1.15
FEW_EPISODES = 3

THRESHOLDS = {
    "slower": "95% CI of the policy/human duration ratio of the successes above 1",
    "idle_ends": f"demos idle at their ends ≥ {IDLE_ENDS_MIN_S:g} s and ≥ {IDLE_ENDS_MIN_SHARE:.0%} of their duration; "
                 f"policy idles at its ends at least as long; its extra idle ≥ {IDLE_GAP_SHARE:.0%} of the gap",
    "rate_mismatch": f"achieved or nominal control rates differ by more than {RATE_MISMATCH:.0%}",
    "starvation": f"starved ticks ≥ {STARVED_SHARE_MIN:.0%} of policy ticks, or a stall ≥ {STALL_MIN_S:g} s",
    "small_actions": f"upper end of the 95% CI of the per-tick joint-step ratio (active ticks) below {ACTION_SHRINK:g}",
    "smoothing": f"human high-frequency share ≥ {HF_MIN:.0%} and the policy's ≤ {SMOOTH_HF_RATIO:g}× it, "
                 f"peak/moving speed ≤ {SMOOTH_PEAK_RATIO:g}× the human's, path length within "
                 f"{PATH_SIMILAR[0]:g}–{PATH_SIMILAR[1]:g}×",
    "jitter": f"policy high-frequency share ≥ {JITTER_HF_RATIO:g}× the human's and ≥ {HF_MIN:.0%}, and the path "
              f"≥ {PATH_LONGER:g}× the human's with the 95% CI above 1",
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
        metrics[key] = _compare_values(human, policy, key, seed=seed, stream=i, resamples=resamples)
    profiles = {"human": _profile_bands(human), "policy": _profile_bands(policy)}
    h_like, p_like = like_for_like(human), like_for_like(policy)
    speed = None
    if h_like is not None and p_like is not None:
        speed = _compare_values(h_like, p_like, "duration_s", seed=seed, stream=len(METRIC_KEYS), resamples=resamples)
    failures = _compare_values(failures_of(human), failures_of(policy), "duration_s", seed=seed,
                               stream=len(METRIC_KEYS) + 1, resamples=resamples)
    gap = speed.policy.stat("mean") - speed.human.stat("mean") if speed is not None else math.nan
    if speed is not None and min(speed.human.n, speed.policy.n) < FEW_EPISODES <= min(len(human), len(policy)):
        notes.append(f"fewer than {FEW_EPISODES} successes in a set ({speed.human.n} of the demonstrations, "
                     f"{speed.policy.n} of the policy): the duration interval of the successes means little")
    comparison = Comparison(labels=labels, human=human, policy=policy, skipped=skipped or {}, metrics=metrics,
                            profiles=profiles, outcomes={"human": outcome_of(human), "policy": outcome_of(policy)},
                            speed=speed, failures=failures, phase=dominant_phase(human, policy),
                            checks=_checks(metrics, human, policy, gap), notes=notes, seed=seed, resamples=resamples)
    allot_shares(comparison.causes, gap if comparison.slower else math.nan)
    comparison.verdict = verdict_text(comparison)
    problems = consistency_problems(comparison)
    if problems:
        raise RuntimeError("the verdict contradicts its evidence: " + "; ".join(problems))
    return comparison


def _compare_values(human: list[EpisodeMetrics], policy: list[EpisodeMetrics], key: str, *, seed: int, stream: int,
                    resamples: int) -> MetricComparison:
    hv, pv = _values(human, key), _values(policy, key)
    ratio, lo, hi = bootstrap_ratio(hv, pv, resamples=resamples, rng=np.random.default_rng([seed, stream]))
    return MetricComparison(key, Distribution(hv), Distribution(pv), ratio, lo, hi)


def _values(items: list[EpisodeMetrics], key: str) -> np.ndarray:
    v = np.array([m.values.get(key, math.nan) for m in items], dtype=np.float64)
    return v[np.isfinite(v)]


def _profile_bands(items: list[EpisodeMetrics]) -> dict[str, np.ndarray]:
    stack = np.array([m.profile for m in items], dtype=np.float64)
    return {"median": np.median(stack, axis=0), "p25": np.percentile(stack, 25, axis=0),
            "p75": np.percentile(stack, 75, axis=0)}


def _m(items: list[EpisodeMetrics], key: str) -> float:
    v = _values(items, key)
    return float(np.mean(v)) if v.size else math.nan


def _checks(metrics: dict[str, MetricComparison], human: list[EpisodeMetrics], policy: list[EpisodeMetrics],
            gap: float) -> list[Check]:
    """Every known cause, over all episodes of each set; ``gap`` is the successes' duration gap (NaN if none)."""
    p_active = _m(policy, "duration_s") - _m(policy, "idle_s")
    return [_check_idle(human, policy, gap), _check_rate(human, policy, p_active), _check_starvation(policy),
            _check_actions(metrics, p_active), _check_smoothing(metrics, human, policy),
            _check_jitter(metrics, policy)]


def _check(check_id: str, title: str, criteria: list[Criterion], fix: str, **kwargs: object) -> Check:
    return Check(check_id, title, criteria, fix, THRESHOLDS[check_id], **kwargs)


def _fin(x: float) -> bool:
    return math.isfinite(x)


def _times(ratio: float) -> str:
    """A ratio for a sentence: "18×", "0.03×", "> 100×"."""
    if not _fin(ratio):
        return "–"
    return "> 100×" if ratio > 100 else f"{ratio:.2g}×" if ratio < 10 else f"{ratio:.0f}×"


def _check_idle(human: list[EpisodeMetrics], policy: list[EpisodeMetrics], gap: float) -> Check:
    h_start, h_end = _m(human, "idle_start_s"), _m(human, "idle_end_s")
    p_start, p_end = _m(policy, "idle_start_s"), _m(policy, "idle_end_s")
    h_ends, p_ends = h_start + h_end, p_start + p_end
    h_share = h_ends / _m(human, "duration_s") if _m(human, "duration_s") > 0 else math.nan
    extra = p_ends - h_ends
    gap_text = f"the {gap:+.2f} s duration gap of the successes" if _fin(gap) else "no duration gap (no successes)"
    share = extra / gap if _fin(gap) and gap > 0 else math.nan
    criteria = [
        Criterion(f"demos idle {h_start:.2f} s at the start and {h_end:.2f} s at the end ({h_share:.0%} of their "
                  f"duration; the cause needs ≥ {IDLE_ENDS_MIN_S:g} s and ≥ {IDLE_ENDS_MIN_SHARE:.0%})",
                  h_ends >= IDLE_ENDS_MIN_S and _fin(h_share) and h_share >= IDLE_ENDS_MIN_SHARE),
        Criterion(f"policy idles {p_start:.2f} s at the start and {p_end:.2f} s at the end (the cause needs at least "
                  f"the demos' {h_ends:.2f} s)", _fin(p_ends) and p_ends >= h_ends),
        Criterion(f"its extra idle at the ends, {extra:+.2f} s per episode, is "
                  + (f"{share:.0%} of {gap_text}" if _fin(share) else f"set against {gap_text}")
                  + f" (the cause needs ≥ {IDLE_GAP_SHARE:.0%})",
                  _fin(share) and share >= IDLE_GAP_SHARE,
                  f"the policy idles {extra:.2f} s longer at its start and end"),
    ]
    return _check("idle_ends", "idle frames at the demos' ends (the policy learned to wait)", criteria,
                 "trim the idle start and end of every demo (Review tab trim handles, or "
                 "`teleop-app episodes trim FILE --start S --end E`), then retrain",
                 explains_s=max(extra, 0.0) if _fin(extra) else None,
                 measured={"human_idle_start_s": h_start, "human_idle_end_s": h_end, "human_idle_ends_share": h_share,
                           "policy_idle_start_s": p_start, "policy_idle_end_s": p_end, "gap_s": gap})


def _median(items: list[EpisodeMetrics], key: str) -> float:
    v = _values(items, key)
    return float(np.median(v)) if v.size else math.nan


def _check_rate(human: list[EpisodeMetrics], policy: list[EpisodeMetrics], p_active: float) -> Check:
    h_rate, p_rate = _median(human, "rate_hz"), _median(policy, "rate_hz")
    h_nom, p_nom = _median(human, "rate_nominal_hz"), _median(policy, "rate_nominal_hz")
    achieved = p_rate / h_rate if h_rate > 0 else math.nan
    nominal = p_nom / h_nom if h_nom > 0 else math.nan
    needs = f"the cause needs a difference > {RATE_MISMATCH:.0%}"
    criteria = [
        Criterion(f"rollouts ran at {p_rate:.1f} Hz, the demos were recorded at {h_rate:.1f} Hz: {achieved:.2f}× "
                  f"({needs})", _fin(achieved) and abs(achieved - 1.0) > RATE_MISMATCH),
        Criterion(f"nominal rates: rollouts {p_nom:.0f} Hz, demos {h_nom:.0f} Hz: {nominal:.2f}× ({needs})",
                  _fin(nominal) and abs(nominal - 1.0) > RATE_MISMATCH),
    ]
    check = _check("rate_mismatch", "control-rate mismatch between recording and rollout", criteria,
                  "run the policy at the rate the demos were recorded at (the rig's control rate), or export the "
                  "training data at the rollout rate (`teleop-app export … --fps`) and retrain", needs="any",
                  measured={"human_rate_hz": h_rate, "policy_rate_hz": p_rate, "human_nominal_hz": h_nom,
                            "policy_nominal_hz": p_nom})
    if check.fired and _fin(achieved) and achieved < 1:
        check.explains_s = p_active * (1.0 - achieved)
    return check


def _check_starvation(policy: list[EpisodeMetrics]) -> Check:
    share = _m(policy, "starved_share")
    stalls = _values(policy, "longest_stall_s")
    stall = float(np.max(stalls)) if stalls.size else math.nan
    starved_s = _m(policy, "starved_s")
    waits = _m(policy, "inference_waits")
    context = []
    if _fin(share):
        criteria = [
            Criterion(f"{share:.1%} of policy ticks had no action ready (the last target was held): {starved_s:.2f} s "
                      f"per episode (the cause needs ≥ {STARVED_SHARE_MIN:.0%})", share >= STARVED_SHARE_MIN),
            Criterion(f"longest stall {stall:.2f} s (the cause needs ≥ {STALL_MIN_S:g} s)",
                      _fin(stall) and stall >= STALL_MIN_S),
        ]
        mean_wait = starved_s / waits if waits else 0.0
        context.append(f"{waits:.1f} inference waits per episode, {mean_wait:.2f} s on average")
    else:
        criteria = [Criterion("no policy ticks in the policy set: starvation cannot be measured", False)]
    check = _check("starvation", "starvation while waiting for inference", criteria,
                  "request the next chunk before the current one runs out (async strategy), use longer chunks or "
                  "execute more of each chunk, or make inference faster (smaller images, a GPU policy server)",
                  needs="any", context=context,
                  measured={"starved_share": share, "longest_stall_s": stall, "starved_s": starved_s,
                            "inference_waits": waits})
    if check.fired and _fin(starved_s):
        check.explains_s = starved_s
    return check


def _check_actions(metrics: dict[str, MetricComparison], p_active: float) -> Check:
    mc = metrics["action_step_rad"]
    reach, lift = metrics["action_step_reach_rad"], metrics["action_step_lift_rad"]
    per_s = metrics["action_speed_rad_s"]
    met = _fin(mc.ci_high) and mc.ci_high < ACTION_SHRINK
    criteria = [Criterion(f"commanded joint step per tick while moving: policy "
                          f"{fmt_value(mc.key, mc.policy.stat('mean'))} vs human "
                          f"{fmt_value(mc.key, mc.human.stat('mean'))} rad = {fmt_ratio(mc)} (the cause needs the "
                          f"upper end of the CI below {ACTION_SHRINK:g})", met)]
    context = [f"at comparable phases: reach {fmt_ratio(reach)}, lift {fmt_ratio(lift)}; per second {fmt_ratio(per_s)}"]
    return _check("small_actions", "shrunken action magnitudes (smaller steps than the human's)", criteria,
                 "check the action normalization statistics and the action unit/scale used in training vs rollout; "
                 "with a tokenized head check the bin range; for averaged multimodal demos consider a chunked or "
                 "generative action head; more demos of the fast motion help", context=context,
                 explains_s=p_active * (1.0 - mc.ratio) if met and _fin(p_active) else None,
                 measured={"ratio": mc.ratio, "ci_low": mc.ci_low, "ci_high": mc.ci_high,
                           "reach_ratio": reach.ratio, "lift_ratio": lift.ratio})


def _crest(items: list[EpisodeMetrics]) -> float:
    """Mean peak speed over mean speed while moving: how peaky the motion is."""
    active = _m(items, "speed_active_mm_s")
    return _m(items, "speed_peak_mm_s") / active if active > 0 else math.nan


def _hf_line(hf: MetricComparison) -> str:
    return (f"high-frequency share of commanded joint velocity: policy {fmt_value(hf.key, hf.policy.stat('mean'))} vs "
            f"human {fmt_value(hf.key, hf.human.stat('mean'))} ({fmt_ratio(hf)})")


def _path_line(path: MetricComparison) -> str:
    return (f"end-effector path: policy {path.policy.stat('mean'):.3f} m vs human {path.human.stat('mean'):.3f} m "
            f"({fmt_ratio(path)})")


def _check_smoothing(metrics: dict[str, MetricComparison], human: list[EpisodeMetrics],
                     policy: list[EpisodeMetrics]) -> Check:
    hf, peak, path = metrics["action_hf_share"], metrics["speed_peak_mm_s"], metrics["path_length_m"]
    h_hf, p_hf = hf.human.stat("mean"), hf.policy.stat("mean")
    h_crest, p_crest = _crest(human), _crest(policy)
    crest = p_crest / h_crest if h_crest > 0 else math.nan
    criteria = [
        Criterion(f"{_hf_line(hf)} (the cause needs the human's ≥ {HF_MIN:.0%} and the policy's ≤ "
                  f"{SMOOTH_HF_RATIO:g}× it)",
                  _fin(h_hf) and h_hf >= HF_MIN and _fin(hf.ratio) and hf.ratio <= SMOOTH_HF_RATIO,
                  f"smoother commands (high-frequency share {fmt_value(hf.key, p_hf)} vs "
                  f"{fmt_value(hf.key, h_hf)}, {_times(hf.ratio)} the demos')"),
        Criterion(f"peak over moving speed: policy {p_crest:.2f} vs human {h_crest:.2f} ({crest:.2f}×; the cause "
                  f"needs ≤ {SMOOTH_PEAK_RATIO:g}×); peak speed {fmt_ratio(peak)}",
                  _fin(crest) and crest <= SMOOTH_PEAK_RATIO,
                  f"lower speed peaks (peak over moving speed {crest:.2f}× the demos')"),
        Criterion(f"{_path_line(path)} (the cause needs {PATH_SIMILAR[0]:g}–{PATH_SIMILAR[1]:g}×)",
                  _fin(path.ratio) and PATH_SIMILAR[0] <= path.ratio <= PATH_SIMILAR[1]),
    ]
    return _check("smoothing", "actions smoothed by ensembling (lower peaks over a similar path)", criteria,
                 "weight newer predictions more in the temporal ensemble (larger decay), or execute chunks "
                 "open-loop / with a short async blend instead of a long ensemble",
                 measured={"hf_ratio": hf.ratio, "crest_ratio": crest, "peak_ratio": peak.ratio,
                           "path_ratio": path.ratio})


def _check_jitter(metrics: dict[str, MetricComparison], policy: list[EpisodeMetrics]) -> Check:
    hf, path = metrics["action_hf_share"], metrics["path_length_m"]
    p_hf = hf.policy.stat("mean")
    criteria = [
        Criterion(f"{_hf_line(hf)} (the cause needs ≥ {JITTER_HF_RATIO:g}× the human's and ≥ {HF_MIN:.0%})",
                  _fin(hf.ratio) and hf.ratio >= JITTER_HF_RATIO and _fin(p_hf) and p_hf >= HF_MIN,
                  f"high-frequency commands (share {fmt_value(hf.key, p_hf)} vs "
                  f"{fmt_value(hf.key, hf.human.stat('mean'))}, {_times(hf.ratio)} the demos')"),
        Criterion(f"{_path_line(path)} (the cause needs ≥ {PATH_LONGER:g}× with the CI above 1)",
                  _fin(path.ratio) and path.ratio >= PATH_LONGER and _fin(path.ci_low) and path.ci_low > 1.0,
                  f"a longer path ({path.policy.stat('mean'):.3f} m vs {path.human.stat('mean'):.3f} m, "
                  f"{_times(path.ratio)} the demos')"),
    ]
    check = _check("jitter", "jittery actions (a zig-zag path longer than the human's)", criteria,
                  "blend where chunks hand over (async with a weighted blend, or a temporal ensemble), check that each "
                  "chunk starts from the measured state, and train longer or on more demos if single predictions are "
                  "noisy", measured={"hf_ratio": hf.ratio, "path_ratio": path.ratio, "path_ci_low": path.ci_low})
    moving = _m(policy, "speed_active_mm_s")
    if check.fired and moving > 0:
        check.explains_s = (path.policy.stat("mean") - path.human.stat("mean")) * 1000.0 / moving
    return check
