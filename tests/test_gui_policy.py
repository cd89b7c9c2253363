"""The Policy tab on the real sim rig (cameras rendering), driven through its widgets and keys as a user would.

Policies come through the same load path the tab uses: a real openpi websocket
server in this process (its answers come from the scripted expert, turned into
joint-target chunks) typed in as ``ws://…``, or a synthetic checkpoint file
whose loader is registered by suffix.
"""

import time

import numpy as np
import pytest
from PySide6 import QtCore, QtTest

from drivers.so101.kinematics import SO101Kinematics
from drivers.sim.scripted import ScriptedExpert, ScriptedExpertConfig
from policies import loading
from policy_helpers import HoldPolicy  # tests/ is on sys.path
from policy_servers import OpenPIServer
from recordings.reader import Episode
from teleop_app.policy_view import STOPPED_TEXT
from teleop_app.modes import Mode
from test_gui_live import SMALL_RIG, key
from ui.app import open_console
from ui.policy_tab import PolicyTab
from ui.screenshots import MAX_PNG_BYTES, _save_small_png

Key = QtCore.Qt.Key
LMB = QtCore.Qt.MouseButton.LeftButton
CHUNK = 25


@pytest.fixture
def policy_window(qtbot, tmp_path):
    """The console window with its Policy tab shown (added here until the window builds it itself)."""
    rig_file = tmp_path / "rig.toml"
    rig_file.write_text(SMALL_RIG)
    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    console, window = open_console(str(rig_file), str(tmp_path / "data"), operator="tester", settings=settings)
    tab = getattr(window, "policy_tab", None)
    wired = tab is not None
    if not wired:
        tab = PolicyTab(window.bridge)
        window.tabs.addTab(tab, "Policy")
        window.timer.timeout.connect(lambda: tab.refresh() if window.tabs.currentWidget() is tab else None)
    qtbot.addWidget(window)
    window.tabs.setCurrentWidget(tab)
    window.show()
    qtbot.waitExposed(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    qtbot.waitUntil(lambda: all(c.latest() is not None for c in console.rig.cameras.values()), timeout=15000)
    yield console, window, tab
    if not wired:
        tab.shutdown()
    window.close()
    console.close()


@pytest.fixture
def expert_server(policy_window):
    """An openpi server answering chunks of joint targets that follow the scripted expert on the window's sim.

    Privileged like the expert itself: a chunk starts from the target the loop commanded last (starting
    from the measured joints, which lag the targets, the arm would creep and miss the cube).
    """
    console = policy_window[0]
    loop, robot, rate = console.rig.loop, console.rig.robot, console.rig.loop.rate_hz
    expert = ScriptedExpert(ScriptedExpertConfig(), robot=robot)
    kin = SO101Kinematics()  # its own scratch state: the server thread runs beside the control loop

    def respond(obs, n):
        inp = expert.read()
        assert obs["prompt"] == "pick up the cube" and obs["observation/state"].shape == (6,)
        q = loop.latest().command.copy()
        actions = []
        for _ in range(CHUNK):
            q = kin.apply_ee_delta(q, inp.ee_twist / rate)
            q[-1] = robot.gripper_to_joint(inp.gripper)
            actions.append(np.clip(q, robot.joint_lower, robot.joint_upper))
        return "reply", {"actions": np.asarray(actions, dtype=np.float32)}

    server = OpenPIServer(respond)
    yield server
    server.close()


@pytest.fixture
def hold_checkpoint(monkeypatch, tmp_path):
    """A checkpoint file of a synthetic policy: loaded by suffix, like the built-in ``.pt`` loader."""
    monkeypatch.setitem(loading.FILE_LOADERS, ".hold",
                        lambda path, **options: HoldPolicy(chunk=20, latency=0.02, drift=0.002))
    path = tmp_path / "model.hold"
    path.write_text("synthetic")
    return path


def load(qtbot, tab, spec, obs_map=""):
    tab.spec_edit.setFocus()
    tab.spec_edit.clear()
    QtTest.QTest.keyClicks(tab.spec_edit, spec)
    if obs_map:
        assert tab.server_box.isEnabled()  # server options apply to server addresses only
        QtTest.QTest.keyClicks(tab.obs_map, obs_map)
    qtbot.mouseClick(tab.load_button, LMB)
    qtbot.waitUntil(lambda: not tab.loader.busy, timeout=15000)
    tab.spec_edit.clearFocus()


def sources_after(rig, t):
    return [s for _, _, s in rig.robot.command_log.since(t)]


def test_server_policy_drives_plots_its_chunks_and_stops_on_escape(qtbot, policy_window, expert_server, tmp_path):
    console, window, tab = policy_window
    rig = console.rig
    window.resize(1440, 900)
    qtbot.mouseClick(tab.start_button, LMB)  # nothing loaded yet: a clear refusal
    assert "nothing is loaded" in tab.message.text() and "c62828" in tab.message.styleSheet()

    load(qtbot, tab, expert_server.url, obs_map="observation/state=state, prompt=task")  # no images: less CPU
    assert tab.load_status.text().startswith("✓") and "openpi" in tab.load_status.text()
    assert [p.titleLabel.text for p in tab.plots.plots][0].startswith("shoulder_pan")
    tab.threshold_spin.setValue(CHUNK // 2)  # ask for the next chunk half-way through one
    tab.task_edit.setText("pick up the cube")  # the console's task, used from Start on
    qtbot.mouseClick(tab.start_button, LMB)
    assert console.mode is Mode.POLICY and rig.loop.policy is not None, (tab.message.text(), rig.kill.reason)

    # the chunk plot follows the policy: executed to the left of now, the current chunk reaching ahead of it
    qtbot.waitUntil(lambda: tab.plots.curve_data(0, "executed")[0].size > 20, timeout=10000)
    x_cur, y_cur = tab.plots.curve_data(0, "current")
    assert x_cur.size and x_cur.max() > 0 and np.all(np.isfinite(y_cur))
    x_ex, y_ex = tab.plots.curve_data(0, "executed")
    assert x_ex.max() <= 0
    assert tab.plots.curve_data(0, "sent")[0].size > 0 and tab.plots.curve_data(0, "previous")[0].size > 0
    before = [tab.plots.curve_data(j, "executed")[1].copy() for j in range(6)]
    qtbot.waitUntil(lambda: any(not np.array_equal(b, tab.plots.curve_data(j, "executed")[1])
                                for j, b in enumerate(before)), timeout=5000)
    assert "inference last" in tab.stats_label.text() and "starved" in tab.stats_label.text()
    assert tab.gripper.commanded is not None and tab.gripper.measured is not None

    # the expert behind the server lifts the cube; the tab says so
    qtbot.waitUntil(lambda: "SUCCESS" in tab.success_label.text(), timeout=45000)
    qtbot.wait(300)
    shot = tmp_path / "policy-tab.png"
    _save_small_png(window.grab().toImage(), shot)
    assert shot.stat().st_size <= MAX_PNG_BYTES

    # Esc: the next tick holds the robot, and the tab ends the run
    ticks = rig.loop.subscribe("test", 1000)
    key(window, Key.Key_Escape)
    assert rig.kill.latched and rig.kill.reason == "STOP pressed"
    qtbot.wait(300)
    t_kill = rig.kill.t_trigger
    later = [r for r in ticks.drain() if r.t > t_kill]  # ticks that began after STOP reached the kill switch
    rig.loop.ticks.unsubscribe(ticks)
    assert later and all(r.killed for r in later)
    after = sources_after(rig, t_kill)
    # The sim logs a command when its physics has caught up, so the one send in flight when STOP came
    # may be logged after it; every command the loop decided after it is the hold.
    first_kill = after.index("kill")
    assert first_kill <= 1 and set(after[first_kill:]) == {"kill"}
    qtbot.waitUntil(lambda: STOPPED_TEXT in tab.headline.text(), timeout=2000)
    assert rig.loop.policy is None and console.mode is Mode.IDLE
    qtbot.mouseClick(tab.start_button, LMB)
    assert "re-arm" in tab.message.text().lower() and console.mode is Mode.IDLE

    # re-arming does not hand the robot back to the policy
    t_rearm = time.monotonic()
    QtTest.QTest.keyClick(window.windowHandle(), Key.Key_R, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert not rig.kill.latched
    qtbot.wait(400)
    assert "policy" not in sources_after(rig, t_rearm) and rig.loop.policy is None
    assert STOPPED_TEXT in tab.headline.text() and tab.start_button.isEnabled()

    # Start runs it again
    t_start = time.monotonic()
    qtbot.mouseClick(tab.start_button, LMB)
    qtbot.waitUntil(lambda: "policy" in sources_after(rig, t_start), timeout=5000)
    assert console.mode is Mode.POLICY and "Policy running" in tab.headline.text()
    qtbot.mouseClick(tab.stop_button, LMB)
    assert rig.loop.policy is None and console.mode is Mode.IDLE and STOPPED_TEXT in tab.headline.text()


def test_takeover_by_the_input_and_by_button_is_recorded(qtbot, policy_window, hold_checkpoint):
    console, window, tab = policy_window
    rig = console.rig
    keyboard = rig.inputs["keyboard"]
    load(qtbot, tab, str(hold_checkpoint))
    assert tab.load_status.text().startswith("✓ hold")
    tab.task_edit.setText("hold still")
    tab.task_edit.editingFinished.emit()
    assert console.task == "hold still"
    tab.record_box.setChecked(True)
    assert tab.takeover_input.currentData() == "keyboard"
    tab.release_spin.setValue(0.3)
    qtbot.mouseClick(tab.start_button, LMB)
    assert console.recording and console.mode is Mode.POLICY, (tab.message.text(), rig.kill.reason)
    qtbot.waitUntil(lambda: console.recorder.counts.get("ticks", 0) > 40, timeout=5000)

    # holding a motion key on the takeover keyboard (what the window's key filter does) takes over
    keyboard.press("w")
    qtbot.waitUntil(lambda: console.mode is Mode.INTERVENTION, timeout=2000)
    qtbot.waitUntil(lambda: tab.banner.isVisible() and "HUMAN TAKEOVER" in tab.banner.text(), timeout=2000)
    assert "let go for 0.3 s" in tab.banner.text()
    assert tab.hand_back_button.isEnabled() and not tab.take_over_button.isEnabled()
    qtbot.wait(400)
    keyboard.release("w")
    qtbot.waitUntil(lambda: console.mode is Mode.POLICY, timeout=3000)  # let go for 0.3 s: handed back
    qtbot.waitUntil(lambda: not tab.banner.isVisible(), timeout=2000)
    qtbot.wait(300)

    # the button pair: the human keeps control until Hand back, however still they are
    qtbot.mouseClick(tab.take_over_button, LMB)
    assert console.mode is Mode.INTERVENTION
    qtbot.wait(600)
    assert console.mode is Mode.INTERVENTION
    qtbot.waitUntil(lambda: tab.banner.isVisible(), timeout=2000)
    assert "press Hand back" in tab.banner.text() and "let go" not in tab.banner.text()
    qtbot.mouseClick(tab.hand_back_button, LMB)
    assert console.mode is Mode.POLICY
    qtbot.wait(400)
    qtbot.mouseClick(tab.stop_button, LMB)
    assert not console.recording and console.mode is Mode.IDLE
    assert "kept as failure" in tab.recording_label.text()  # the sim saw no success

    files = sorted((console.dataset_dir).glob("episode_*.h5"))
    assert len(files) == 1
    with Episode.open(files[0]) as ep:
        assert ep.meta["task"] == "hold still" and ep.meta["success"] == "false"
        assert "strategy async" in ep.meta["notes"] and "2 human takeover(s)" in ep.meta["notes"]
        ticks = ep.ticks()
    sources = ticks["source_names"][ticks["source"]]
    runs = [s for i, s in enumerate(sources) if i == 0 or s != sources[i - 1]]
    assert runs == ["policy", "intervention", "policy", "intervention", "policy"]
    kinds = ticks["input_kind_names"][ticks["input_kind"]]
    assert "ee_delta" in set(kinds[sources == "intervention"])  # the keyboard's steps were recorded
    assert set(kinds[sources == "policy"]) <= {"joint", "none"}


def test_policy_error_stops_and_rearm_does_not_resume(qtbot, policy_window, monkeypatch, tmp_path):
    console, window, tab = policy_window
    rig = console.rig
    monkeypatch.setitem(loading.FILE_LOADERS, ".hold", lambda path, **options: HoldPolicy(chunk=5, bad={4: "nan"}))
    path = tmp_path / "broken.hold"
    path.write_text("synthetic")
    load(qtbot, tab, str(path))
    qtbot.mouseClick(tab.start_button, LMB)
    qtbot.waitUntil(lambda: rig.kill.latched, timeout=5000)
    qtbot.waitUntil(lambda: STOPPED_TEXT in tab.headline.text(), timeout=2000)
    assert "NaN" in tab.headline.text() and rig.loop.policy is None
    window.rearm()
    t = time.monotonic()
    qtbot.wait(300)
    assert "policy" not in sources_after(rig, t) and console.mode is Mode.IDLE


def test_refusals_and_load_errors_are_one_red_line(qtbot, policy_window, hold_checkpoint, tmp_path):
    console, window, tab = policy_window
    load(qtbot, tab, str(tmp_path / "missing.pt"))
    text = tab.load_status.text()
    assert "no such checkpoint file" in text and "\n" not in text and "Traceback" not in text
    assert "c62828" in tab.load_status.styleSheet()

    closed = OpenPIServer(lambda obs, n: ("reply", {}))
    url = closed.url
    closed.close()
    load(qtbot, tab, url)
    assert "cannot connect" in tab.load_status.text() and "\n" not in tab.load_status.text()

    load(qtbot, tab, str(hold_checkpoint))
    console.stop()
    qtbot.mouseClick(tab.start_button, LMB)
    assert "the robot is stopped" in tab.message.text() and rig_policy(console) is None
    console.rearm()

    console.set_task("demo")
    console.start_episode()  # a human episode on the Live tab
    qtbot.mouseClick(tab.start_button, LMB)
    assert "being recorded" in tab.message.text() and rig_policy(console) is None
    console.discard()

    console.set_task("")
    tab.record_box.setChecked(True)
    qtbot.mouseClick(tab.start_button, LMB)
    assert "task sentence" in tab.message.text() and rig_policy(console) is None
    assert console.mode is not Mode.POLICY


def rig_policy(console):
    return console.rig.loop.policy


def test_speed_real_time_chunking_and_low_pass_are_chosen_on_the_tab(qtbot, policy_window, hold_checkpoint):
    """The Policy tab offers the execution speed, real-time chunking and the low-pass that `run-policy` has; the
    rollout uses them and its episode says so."""
    console, window, tab = policy_window
    load(qtbot, tab, str(hold_checkpoint))
    tab.task_edit.setText("hold still")
    tab.task_edit.editingFinished.emit()
    tab.record_box.setChecked(True)
    tab.speed_spin.setValue(1.3)
    tab.rtc_box.setChecked(False)
    assert tab.smooth_spin.text() == "off"
    tab.smooth_spin.setValue(3.0)
    options = tab.run_options()
    assert options.speed == 1.3 and options.strategy.rtc is False and options.strategy.smooth_hz == 3.0
    qtbot.mouseClick(tab.start_button, LMB)
    assert console.mode is Mode.POLICY, tab.message.text()
    assert console.rig.loop.policy.speed == 1.3
    assert console.rig.loop.policy.strategy.smoothing.cutoff_hz == 3.0
    assert not tab.speed_spin.isEnabled() and not tab.smooth_spin.isEnabled()  # a running rollout keeps them
    qtbot.waitUntil(lambda: console.recorder.counts.get("ticks", 0) > 40, timeout=5000)
    qtbot.mouseClick(tab.stop_button, LMB)
    assert tab.speed_spin.isEnabled()
    [path] = sorted(console.dataset_dir.glob("episode_*.h5"))
    with Episode.open(path) as ep:
        assert "speed 1.3x" in ep.meta["notes"] and "low-pass 3 Hz" in ep.meta["notes"]
