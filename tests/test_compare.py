"""Human vs policy: episode sets whose cause of slowness is known by construction, diagnosed; CLI and HTML report.

Each scenario writes six human demos and six policy rollouts with
``speed_episodes.pick_episode`` and changes one thing on the policy side (or,
for the idle case, on both): the diagnosis must name that cause and no other,
and no cause at all when the policy is not slower. The verdict tests reproduce
the ways a verdict once contradicted its evidence: rollouts that never
succeeded called "not slower", cause estimates larger than the gap, jitter
evidence beside "no cause", a grasp that takes six times as long named by
nothing.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
import shutil

import numpy as np
import pytest

from recordings import edit
from recordings.analysis.compare import (
    FEW_EPISODES,
    bootstrap_ratio,
    compare_by_source,
    compare_metrics,
    compare_sets,
    resolve_set,
)
from recordings.analysis.metrics import METRICS, metrics_of
from recordings.analysis.report import write_report
from recordings.analysis.verdict import consistency_problems
from speed_episodes import pick_episode, pick_set
from teleop_app import cli
from teleop_app.rollouts import RolloutOptions

COUNT = 6
SCENARIOS = {  # name: (human options, policy options, the causes the diagnosis must name)
    "idle_ends": ({"idle_start": 1.5, "idle_end": 1.5}, {"idle_start": 3.5, "idle_end": 2.5}, ["idle_ends"]),
    "starvation": ({}, {"starve": (10, 15)}, ["starvation"]),
    "small_actions": ({}, {"speed": 0.6}, ["small_actions"]),
    "not_slower": ({}, {}, []),
    "rate_mismatch": ({}, {"rate": 50.0, "speed": 0.5}, ["rate_mismatch"]),  # the human's per-tick steps at 50 Hz
    "smoothing": ({"bursts": 4, "wiggle": 0.002}, {"bursts": 4, "smooth_s": 0.5, "speed": 0.95}, ["smoothing"]),
    "jitter": ({}, {"jitter": 0.006, "speed": 0.85}, ["jitter"]),
}


@pytest.fixture(scope="module")
def scenario_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("scenarios")
    out = {}
    for name, (human, policy, _) in SCENARIOS.items():
        h = pick_set(root / name / "human", COUNT, **human)
        p = pick_set(root / name / "policy", COUNT, first_seed=100, source="policy", **policy)
        out[name] = (root / name, h, p)
    return out


@pytest.fixture(scope="module")
def comparisons(scenario_sets):
    return {name: compare_sets(h, p) for name, (_, h, p) in scenario_sets.items()}


# -- the diagnosis ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_diagnosis_names_the_known_cause(comparisons, name):
    c = comparisons[name]
    expected = SCENARIOS[name][2]
    assert [cause.id for cause in c.causes] == expected, c.text()
    assert c.verdict.startswith(f"The policy succeeded in {COUNT} of {COUNT} (100%), the demonstrations in {COUNT} "
                                f"of {COUNT} (100%).")
    assert consistency_problems(c) == []
    if expected:
        assert c.slower and c.speed.ci_low > 1.0 and not c.ok
        assert "The policy is slower on successes" in c.verdict
        cause = c.causes[0]
        assert cause.title in c.verdict
        assert cause.fix and all(cause.evidence)
    else:
        assert not c.slower and c.speed.ci_low <= 1.0 <= c.speed.ci_high and c.ok
        assert "No cause found" in c.verdict and "not slower" in c.verdict
        assert all(x.status == "no" for x in c.checks)  # at most preconditions hold: "not found (k of n …)"
        assert all(x.status_text() == "no" or x.status_text().startswith("not found (") for x in c.checks)


def test_idle_evidence_and_fix(comparisons):
    c = comparisons["idle_ends"]
    (cause,) = c.causes
    m = cause.measured
    assert 1.4 < m["human_idle_start_s"] < 1.8 and 1.4 < m["human_idle_end_s"] < 1.8
    assert 3.4 < m["policy_idle_start_s"] < 3.9 and 2.3 < m["policy_idle_end_s"] < 2.8
    assert cause.explains_s == pytest.approx(c.gap_s, rel=0.1)  # the extra idle is the whole gap
    assert "teleop-app episodes trim" in cause.fix
    assert "demos idle 1." in cause.evidence[0]


def test_starvation_evidence(comparisons):
    c = comparisons["starvation"]
    (cause,) = c.causes
    m = cause.measured
    assert m["starved_share"] == pytest.approx(15 / 25, abs=0.05)  # 15 of every 25 moving ticks held
    assert m["longest_stall_s"] == pytest.approx(0.15, abs=0.02)
    assert cause.explains_s == pytest.approx(c.gap_s, rel=0.15)
    assert "inference waits per episode" in cause.evidence[2] and "(the cause needs ≥ 5%)" in cause.evidence[0]


def test_small_actions_hold_at_comparable_phases(comparisons):
    (cause,) = comparisons["small_actions"].causes
    m = cause.measured
    assert m["ratio"] == pytest.approx(0.6, abs=0.05)
    assert m["reach_ratio"] == pytest.approx(0.6, abs=0.06) and m["lift_ratio"] == pytest.approx(0.6, abs=0.06)


def test_slower_with_no_known_cause(comparisons):
    """The same episodes, but the policy's durations stretched by 2 s with nothing else changed."""
    c = comparisons["not_slower"]
    policy = [dataclasses.replace(m, values={**m.values, "duration_s": m.values["duration_s"] + 2.0})
              for m in c.policy]
    slow = compare_metrics(c.human, policy, labels=("h", "p"))
    assert slow.slower and slow.causes == [] and slow.phase is None
    assert "No known cause and no single phase explains the gap" in slow.verdict
    assert "No cause found" not in slow.verdict  # reserved for a policy that is not slower
    assert "checks:" in slow.text()


def test_checks_are_reported_but_not_blamed_when_not_slower(comparisons):
    """A policy that idles like crazy but is faster: the idle check's numbers are shown, no cause is named."""
    c = comparisons["idle_ends"]
    swapped = compare_metrics(c.policy, c.human, labels=("p", "h"))
    assert swapped.faster and not swapped.slower and swapped.causes == []
    assert "faster" in swapped.verdict


def test_ratio_table_and_profiles(comparisons):
    c = comparisons["small_actions"]
    dur = c.metrics["duration_s"]
    assert dur.human.n == dur.policy.n == COUNT
    assert dur.ratio == pytest.approx(dur.policy.stat("mean") / dur.human.stat("mean"))
    assert dur.ci_low < dur.ratio < dur.ci_high
    peak = c.metrics["speed_peak_mm_s"]
    assert peak.ratio == pytest.approx(0.6, abs=0.05)
    for side in ("human", "policy"):
        bands = c.profiles[side]
        assert np.all(bands["p25"] <= bands["median"] + 1e-9) and np.all(bands["median"] <= bands["p75"] + 1e-9)
    assert c.profiles["policy"]["median"].max() < 0.75 * c.profiles["human"]["median"].max()


# -- statistics ------------------------------------------------------------------------------------
def test_bootstrap_is_seeded_and_covers_the_truth():
    rng = np.random.default_rng(1)
    h, p = rng.normal(10, 1, 20), rng.normal(15, 1, 20)
    a = bootstrap_ratio(h, p, rng=np.random.default_rng(7))
    b = bootstrap_ratio(h, p, rng=np.random.default_rng(7))
    assert a == b
    ratio, lo, hi = a
    assert lo < 1.5 < hi and lo > 1.3 and hi < 1.7 and ratio == pytest.approx(p.mean() / h.mean())
    same = bootstrap_ratio(h, h, rng=np.random.default_rng(7))
    assert same[1] < 1.0 < same[2]
    assert all(np.isnan(bootstrap_ratio(np.zeros(3), p)))
    assert all(np.isnan(bootstrap_ratio(np.array([]), p)))


def test_same_seed_same_numbers(scenario_sets):
    _, h, p = scenario_sets["starvation"]
    a, b = compare_sets(h, p, seed=3, resamples=500), compare_sets(h, p, seed=3, resamples=500)
    assert a.to_dict()["metrics"] == b.to_dict()["metrics"]


# -- choosing the sets -----------------------------------------------------------------------------
def test_resolve_folder_glob_and_file(scenario_sets):
    root, h, _ = scenario_sets["not_slower"]
    assert resolve_set(root / "human") == h
    assert resolve_set(str(root / "*" / "episode_00000[12].h5")) == sorted(
        [*h[:2], root / "policy" / h[0].name, root / "policy" / h[1].name])
    assert resolve_set(h[0]) == [h[0]]
    with pytest.raises(ValueError, match="no episode files match"):
        resolve_set(root / "nothing*.h5")
    (root / "empty").mkdir(exist_ok=True)
    with pytest.raises(ValueError, match="no episodes in"):
        resolve_set(root / "empty")


def test_by_source_splits_one_folder(tmp_path):
    folder = tmp_path / "dataset"
    folder.mkdir()
    for i in range(3):  # two by a person, one by the scripted expert: all three demonstrate the task
        pick_episode(folder / f"episode_{i + 1:06d}.h5", seed=i, source="scripted" if i == 2 else "human")
        pick_episode(folder / f"episode_{i + 4:06d}.h5", seed=10 + i, source="policy", speed=0.6)
    (folder / "episode_000007.h5").write_bytes(b"broken")
    c = compare_by_source(folder)
    assert [m.name for m in c.human] == [f"episode_{i:06d}.h5" for i in (1, 2, 3)]
    assert [m.source for m in c.human] == ["human", "human", "scripted"]  # the expert is not counted as a human
    assert "demonstrations 2 human, 1 scripted" in c.labels[0]
    assert [m.name for m in c.policy] == [f"episode_{i:06d}.h5" for i in (4, 5, 6)]
    assert [p.name for p, _ in c.skipped["unassigned"]] == ["episode_000007.h5"]
    assert c.slower and [x.id for x in c.causes] == ["small_actions"]
    assert not any("fewer than" in n for n in c.notes)  # three a side is enough
    few = compare_metrics(c.human[:2], c.policy, labels=("a", "b"))
    assert any(f"fewer than {FEW_EPISODES} episodes" in n for n in few.notes)


def test_unreadable_and_unexpected_episodes_are_noted(tmp_path, scenario_sets):
    _, h, p = scenario_sets["not_slower"]
    broken = tmp_path / "episode_000099.h5"
    broken.write_bytes(b"broken")
    c = compare_sets([*h, broken], [*p, h[0]])
    assert [x.name for x, _ in c.skipped["human"]] == [broken.name]
    assert len(c.human) == COUNT and len(c.policy) == COUNT + 1
    assert any("not mostly policy-driven" in n and h[0].name in n for n in c.notes)
    with pytest.raises(ValueError, match="no readable policy episodes"):
        compare_sets(h, [broken])


def test_trimming_the_demos_removes_the_idle_cause(scenario_sets, tmp_path):
    """The fix the diagnosis suggests works on the numbers: trimmed demos, same rollouts → the gap gets bigger,
    and the demos no longer idle at their ends."""
    _, h, p = scenario_sets["idle_ends"]
    done, _ = metrics_of(h)
    trimmed = []
    for m, path in zip(done, h):
        copy = tmp_path / path.name
        copy.write_bytes(path.read_bytes())
        edit.set_trim(copy, m.values["idle_start_s"], m.values["duration_s"] - m.values["idle_end_s"])
        trimmed.append(copy)
    c = compare_sets(trimmed, p)
    check = next(x for x in c.checks if x.id == "idle_ends")
    assert check.measured["human_idle_start_s"] < 0.1 and check.measured["human_idle_end_s"] < 0.1
    assert not check.fired


# -- output: JSON, text, HTML, CLI -----------------------------------------------------------------
def test_to_dict_is_strict_json(comparisons):
    d = comparisons["starvation"].to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["causes"] == ["starvation"] and back["slower"] is True
    assert len(back["episodes"]["human"]) == COUNT and len(back["profiles"]["normalized_time"]) == 101
    assert {m["key"] for m in back["metrics"]} == {m.key for m in METRICS}
    assert back["bootstrap"] == {"resamples": 2000, "seed": 0, "ci_level": 0.95}


def test_html_report_is_self_contained(comparisons, tmp_path):
    c = comparisons["idle_ends"]
    path = write_report(c, tmp_path / "out" / "report.html")
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://", text)
    assert not re.search(r"<(script|link|img|iframe)\b", text)
    assert "url(" not in text
    assert text.count("<svg") >= 3 + sum(1 for m in METRICS if c.metrics[m.key].human.n)
    assert "<polygon" in text and "<polyline" in text  # the bands and medians
    assert html.escape(c.causes[0].title) in text and "teleop-app episodes trim" in text
    for m in METRICS:
        if c.metrics[m.key].human.n:
            assert m.label in text


def run_cli(argv, capsys):
    code = cli.main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_text(scenario_sets, capsys):
    root, _, _ = scenario_sets["starvation"]
    code, out, _ = run_cli(["--human", str(root / "human"), "--policy", str(root / "policy" / "*.h5")], capsys)
    assert code == 0
    assert "The policy is slower on successes" in out and "starvation while waiting for inference" in out
    assert re.search(r"duration \(s\)\s+\d+\.\d\d\s+\d+\.\d\d\s+2\.\d\d× \[", out)
    assert "fix: request the next chunk" in out


def test_cli_json_and_report(scenario_sets, capsys, tmp_path):
    root, _, _ = scenario_sets["small_actions"]
    report = tmp_path / "r.html"
    code, out, _ = run_cli(["--human", str(root / "human"), "--policy", str(root / "policy"), "--json",
                            "--report", str(report)], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["causes"] == ["small_actions"] and data["report"] == str(report)
    assert data["sets"] == {"human": str(root / "human"), "policy": str(root / "policy")}
    assert report.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_errors_are_one_line(scenario_sets, capsys, tmp_path):
    root, _, _ = scenario_sets["not_slower"]
    code, out, err = run_cli(["--human", str(root / "human")], capsys)
    assert code == 2 and "give --human DIR_OR_GLOB and --policy" in err
    code, _, err = run_cli(["--human", str(tmp_path / "none"), "--policy", str(root / "policy")], capsys)
    assert code == 2 and "no episode files match" in err and "Traceback" not in err
    code, _, err = run_cli(["--by-source", str(root / "human"), "--human", "x"], capsys)
    assert code == 2 and "not both" in err
    code, _, err = run_cli(["--by-source", str(root / "human")], capsys)  # all human: no policy episodes
    assert code == 2 and "no readable policy episodes" in err


# -- the verdict tells the truth -------------------------------------------------------------------
def _sets(root, human=None, policy=None, count=COUNT):
    h = pick_set(root / "human", count, **(human or {}))
    p = pick_set(root / "policy", count, first_seed=100, source="policy", **(policy or {}))
    return h, p


def test_rollouts_that_never_succeed_are_never_not_slower(tmp_path):
    h, p = _sets(tmp_path, policy={"success": "false"})  # as fast as the demos, but every one failed
    c = compare_sets(h, p)
    assert c.verdict.startswith(f"The policy succeeded in 0 of {COUNT} (0%), the demonstrations in {COUNT} of "
                                f"{COUNT} (100%).")
    assert "cannot be compared on successes: the policy has none" in c.verdict
    assert "not slower" not in c.verdict and "faster" not in c.verdict and "No cause found" not in c.verdict
    assert c.fails_more and not c.ok and c.speed is None and c.to_dict()["ok"] is False
    assert f"Failures, compared separately: the policy's {COUNT} lasted" in c.verdict
    assert c.verdict.endswith("Nothing else measured differs from the demonstrations beyond its threshold (see the "
                              "checks).")
    assert consistency_problems(c) == []


def test_by_source_failing_jittery_rollouts_name_the_jitter(tmp_path):
    """The issue's first case: by source, rollouts that never succeeded, with a zig-zag path beside the demos'."""
    folder = tmp_path / "dataset"
    folder.mkdir()
    for i in range(4):
        pick_episode(folder / f"episode_{i + 1:06d}.h5", seed=i)
        pick_episode(folder / f"episode_{i + 5:06d}.h5", seed=10 + i, source="policy", success="false",
                     jitter=0.006)
    c = compare_by_source(folder)
    assert c.verdict.startswith("The policy succeeded in 0 of 4 (0%), the demonstrations in 4 of 4 (100%).")
    jitter = next(x for x in c.checks if x.id == "jitter")
    assert jitter.status == "fires" and [x.id for x in c.causes] == ["jitter"]
    assert "It differs from the demonstrations: jittery actions" in c.verdict
    assert "not slower" not in c.verdict and "No cause found" not in c.verdict and not c.ok


def test_relabelled_copy_of_successes_is_not_called_not_slower(tmp_path):
    """Two successful demos, copied and labelled as failures: the same motion, but a set that failed."""
    demos = pick_set(tmp_path / "demos", 2)
    (tmp_path / "copy").mkdir()
    copies = []
    for path in demos:
        copy = tmp_path / "copy" / path.name
        shutil.copy(path, copy)
        edit.label(copy, success=False)
        copies.append(copy)
    c = compare_sets(demos, copies)
    assert c.metrics["duration_s"].ratio == pytest.approx(1.0)  # the very same durations
    assert c.verdict.startswith("The policy succeeded in 0 of 2 (0%), the demonstrations in 2 of 2 (100%).")
    assert "not slower" not in c.verdict and "No cause found" not in c.verdict and not c.ok


def test_durations_compared_on_successes_failures_apart(tmp_path):
    """Half the rollouts fail and then idle for 6 s: the headline compares successes with successes only."""
    h = pick_set(tmp_path / "human", COUNT)
    p = (pick_set(tmp_path / "wins", 3, first_seed=100, source="policy")
         + pick_set(tmp_path / "losses", 3, first_seed=200, source="policy", success="false", idle_end=6.0))
    c = compare_sets(h, p)
    assert c.metrics["duration_s"].ci_low > 1.1  # over every episode the policy looks much slower
    assert c.speed.policy.n == 3 and c.speed.ci_low <= 1.0 <= c.speed.ci_high  # its successes are not
    assert c.failures.policy.n == 3 and c.failures.human.n == 0
    assert c.verdict.startswith(f"The policy succeeded in 3 of 6 (50%), the demonstrations in {COUNT} of {COUNT}")
    assert "Its successful episodes took 1.0" in c.verdict and "not slower" not in c.verdict
    assert "No cause found" not in c.verdict  # failing half the time is the difference
    mean_fail = c.failures.policy.stat("mean")
    assert f"the policy's 3 lasted {mean_fail:.2f} s on average, the demonstrations had none" in c.verdict
    assert not c.ok and consistency_problems(c) == []
    assert "duration, successes (s)" in c.text() and "duration, failures (s)" in c.text()
    few = compare_sets(h, p[2:])  # one success left
    assert any("fewer than 3 successes in a set (6 of the demonstrations, 1 of the policy)" in n for n in few.notes)


def test_cause_shares_never_exceed_the_gap(comparisons):
    c = comparisons["jitter"]
    (cause,) = c.causes
    assert cause.explains_s > c.gap_s > 0  # the extra path alone would account for more than the whole gap
    assert cause.share_s == pytest.approx(c.gap_s)
    assert f"≈ {c.gap_s:.2f} s of the {c.gap_s:+.2f} s gap, 100%" in c.verdict
    assert f"its own estimate of {cause.explains_s:.2f} s capped" in c.verdict
    assert f"≈ {cause.explains_s:.1f} s" not in c.text()
    for name, other in comparisons.items():
        shares = [x.share_s for x in other.causes if x.share_s is not None]
        assert sum(shares) <= max(other.gap_s, 0.0) + 1e-9, name


def test_jitter_evidence_above_threshold_is_named_when_not_slower(tmp_path):
    h, p = _sets(tmp_path, policy={"jitter": 0.006})  # a zig-zag path at the demos' pace
    c = compare_sets(h, p)
    assert not c.slower
    jitter = next(x for x in c.checks if x.id == "jitter")
    assert jitter.status == "fires" and all(x.met for x in jitter.criteria)
    assert "jittery actions" in c.verdict and "No cause found" not in c.verdict


def test_partial_evidence_is_named_not_reported_as_no(tmp_path):
    """A 6 Hz wiggle of the wrist: high-frequency commands 2× and more the demos', the path unchanged."""
    h, p = _sets(tmp_path, policy={"wiggle": 0.004})
    c = compare_sets(h, p)
    jitter = next(x for x in c.checks if x.id == "jitter")
    assert jitter.status == "partly" and jitter.status_text() == "partly (1 of 2 conditions)"
    assert [x.met for x in jitter.criteria] == [True, False]
    assert jitter.criteria[0].finding in c.verdict and "Measured differences: high-frequency commands" in c.verdict
    assert "No cause found" not in c.verdict
    assert "jittery actions (a zig-zag path longer than the human's): partly (1 of 2 conditions)" in c.text()


def test_a_dominant_grasp_phase_is_named(tmp_path, comparisons):
    h, p = _sets(tmp_path, policy={"grasp_speed": 0.15})  # closes the gripper at a sixth of the demos' pace
    c = compare_sets(h, p)
    assert c.slower and c.phase is not None and c.phase.phase == "grasp"
    assert c.phase.policy_s > 5 * c.phase.human_s and c.phase.extra_s > 0.5 * c.gap_s
    assert (f"It hesitates at the grasp: {c.phase.policy_s:.2f} s vs {c.phase.human_s:.2f} s in the grasp phase"
            in c.verdict)
    assert "No known cause" not in c.verdict and "No cause found" not in c.verdict
    for name in ("small_actions", "jitter", "starvation"):  # slower all along: no phase stands out
        assert comparisons[name].phase is None, name


def test_a_failing_policy_that_hesitates_at_the_grasp_is_told_so(tmp_path):
    """No success to compare with: the phases of every rollout against the demonstrations' successes."""
    h, p = _sets(tmp_path, policy={"grasp_speed": 0.15, "success": "false"})
    c = compare_sets(h, p)
    assert c.speed is None and c.phase is not None and c.phase.phase == "grasp" and c.phase.over_all
    assert "cannot be compared on successes" in c.verdict and "It hesitates at the grasp" in c.verdict
    assert "longer mean duration of every policy episode" in c.verdict and consistency_problems(c) == []


def test_the_consistency_check_catches_a_contradiction(tmp_path):
    h, p = _sets(tmp_path, policy={"success": "false", "jitter": 0.006})
    c = compare_sets(h, p)
    old = dataclasses.replace(c, verdict="The policy is not slower than the human: 1.00×. No cause found.")
    problems = consistency_problems(old)
    assert any("succeeds less often" in x for x in problems)
    assert any("jitter fires but the verdict does not name it" in x for x in problems)
    assert any("No cause found" in x for x in problems)


def test_cli_and_report_show_the_failing_verdict(tmp_path, capsys):
    h, p = _sets(tmp_path, policy={"success": "false", "jitter": 0.006}, count=3)
    code, out, _ = run_cli(["--human", str(tmp_path / "human"), "--policy", str(tmp_path / "policy"),
                            "--report", str(tmp_path / "r.html")], capsys)
    assert code == 0
    assert "The policy succeeded in 0 of 3 (0%), the demonstrations in 3 of 3 (100%)." in out
    assert "jittery actions (a zig-zag path longer than the human's): fires" in out
    assert "not slower" not in out
    text = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert '<div class="verdict warn">' in text and html.escape("The policy succeeded in 0 of 3") in text
    code, out, _ = run_cli(["--human", str(tmp_path / "human"), "--policy", str(tmp_path / "policy"), "--json"],
                           capsys)
    data = json.loads(out)
    assert data["ok"] is False and data["fails_more"] is True and data["speed_on_successes"] is None
    assert data["success"]["policy"] == {"successes": 0, "failures": 3, "unlabelled": 0, "rate": 0.0}


def test_the_execution_speed_of_the_rollouts_is_shown(tmp_path, capsys):
    """Rollouts run faster than planned (``run-policy --speed``) say so in the text, JSON and HTML report;
    the speed is read back from the notes the core writes (``RolloutOptions.describe``)."""
    human = pick_set(tmp_path / "human", COUNT)
    policy = pick_set(tmp_path / "policy", COUNT, first_seed=100, source="policy")
    fast = RolloutOptions(speed=1.3).describe()
    for path in policy[:4]:
        edit.label(path, notes=f"policy p.pt, {fast}")
    c = compare_sets(human, policy)
    assert c.policy_speeds == {1.0: 2, 1.3: 4}
    assert c.speed_text == "chunks executed at 1× (2 of 6), 1.3× (4 of 6) their planned speed"
    report = tmp_path / "r.html"
    code, out, _ = run_cli(["--human", str(tmp_path / "human"), "--policy", str(tmp_path / "policy"),
                            "--report", str(report)], capsys)
    assert code == 0 and c.speed_text in out
    assert html.escape(c.speed_text) in report.read_text(encoding="utf-8")
    assert json.loads(json.dumps(c.to_dict()))["policy_speeds"] == {"1": 2, "1.3": 4}
    plain = compare_sets(human, human)
    assert plain.speed_text == "" and "planned speed" not in plain.text()
