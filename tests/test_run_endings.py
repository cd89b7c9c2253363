"""A run ends the same way whoever drives it: success, time limit, kill and a full disk, for an input and a policy.

``collect`` (an input drives), ``run-policy`` (a policy drives) and the window
(either) all end their runs through the operator session's one set of rules; this
test drives the session's batch both ways and checks what each ending means: the
reason, the label, the notes in the file, and whether the batch goes on.
The full disk is real: a small tmpfs filled up while the episode records.
"""

from __future__ import annotations

import errno
import subprocess
import threading
from pathlib import Path

import pytest

from policies import loading
from policies.loading import LoadOptions
from policy_helpers import ExpertPolicy
from recordings.reader import Episode
from teleop_app.config import load_rig
from teleop_app.operator_session import BatchPlan, OperatorSession
from teleop_app.rig import build_rig
from teleop_app.rollouts import RolloutOptions, StrategyOptions
from teleop_app.runs import EndReason, EndRules


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB file system of its own (tmpfs), and a function that fills it up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)

    def fill() -> None:
        with open(mount / "filler", "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    yield mount, fill
    subprocess.run(["umount", "-l", str(mount)], check=False)


EXPECTED = {
    # ending: (reason, outcome, success attribute, a phrase of the notes, runs before the batch stops)
    "success": (EndReason.SUCCESS, "success", "true", None, 2),
    "time limit": (EndReason.TIME_LIMIT, "failure", "false", "ended at the time limit (0.8 s)", 2),
    "kill": (EndReason.KILL, "failure", "false", "stopped by the kill switch: STOP pressed", 1),
    "write failure": (EndReason.WRITE_FAILURE, "failed", None, None, 1),
}


@pytest.mark.parametrize("ending", list(EXPECTED))
@pytest.mark.parametrize("driver", ["input", "policy"])
def test_a_run_ends_for_the_same_reasons_whoever_drives(driver, ending, tmp_path, small_disk, monkeypatch):
    rig = build_rig(load_rig().without_cameras(), active_input="scripted")
    folder = small_disk[0] if ending == "write failure" else tmp_path / "data"
    session = OperatorSession(rig, folder, task="pick up the cube")
    session.recorder.min_free_bytes = 0  # the small disk is meant to fill up
    rules = {"success": EndRules(after_success_s=0.3, time_limit_s=40),
             "time limit": EndRules(time_limit_s=0.8)}.get(ending, EndRules(time_limit_s=30))
    rollout = None
    if driver == "policy":
        monkeypatch.setitem(loading.FILE_LOADERS, ".expert", lambda path, **o: ExpertPolicy(rig.robot))
        (tmp_path / "m.expert").write_text("the scripted expert, as a policy")
        session.load_policy(LoadOptions(str(tmp_path / "m.expert")))
        rollout = RolloutOptions(StrategyOptions("async"), takeover=None)
    with session:
        if driver == "input":
            session.set_teleop(True)
        if ending in ("kill", "write failure"):
            act = session.stop if ending == "kill" else small_disk[1]
            started = threading.Event()
            session.add_listener(lambda event: session.recording and started.set())
            threading.Thread(target=lambda: started.wait(30) and threading.Timer(0.8, act).start(),
                             daemon=True).start()
        report = session.run_batch(BatchPlan(2, rules, seed=3, rollout=rollout))

    reason, outcome, success, note, runs = EXPECTED[ending]
    assert len(report.results) == runs, [r.reason for r in report.results]
    assert (report.stopped_by is not None) == (runs == 1)
    for result in report.results:
        assert result.reason is reason and result.outcome == outcome, result
        if ending == "write failure":
            assert result.detail.startswith(f"{result.path.name} was not finalized: the disk is full")
            assert "teleop-app episodes repair" in result.detail
            continue
        with Episode.open(result.path) as ep:
            assert ep.meta["success"] == success
            if note:
                assert note in ep.meta["notes"]
            ticks = ep.ticks()
        drove = set(ticks["source_names"][ticks["source"]]) - {"idle"}
        assert drove == ({"scripted"} if driver == "input" else {"policy"}), drove
    if ending == "kill":
        assert rig.kill.latched and not Path(folder, "episode_000002.h5").exists()
