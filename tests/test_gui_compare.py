"""The Compare tab with real episode files and an operator session on the sim rig, driven as a user would (pytest-qt).

The rollouts are written with known causes (``speed_episodes``): demos that
idle at both ends and a policy that idles longer and waits for inference, so
the tab must show both causes, and what it draws must be the comparison's
numbers. Rollouts that never succeed get a verdict that says so, not in green.
``TELEOP_DOCS_SCREENSHOT=1`` also writes ``docs/compare-tab.png``.
"""

from __future__ import annotations

import html
import os
import re
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from recordings import edit
from recordings.analysis.compare import compare_sets, fmt_ratio
from recordings.analysis.metrics import METRICS
from recordings.analysis.report import phase_means
from speed_episodes import pick_episode, pick_set
from teleop_app.operator_session import OperatorSession
from teleop_app.rollouts import RolloutOptions
from ui.bridge import SessionBridge
from ui.compare_tab import CompareTab

MAX_PNG_BYTES = 300 * 1024
DOCS = Path(__file__).resolve().parent.parent / "docs"
HUMAN = {"idle_start": 1.5, "idle_end": 1.5}
POLICY = {"idle_start": 3.0, "idle_end": 2.5, "starve": (20, 6), "source": "policy"}
GREEN = "#e8f5e9"  # the verdict's background when the analysis says ok (ui.compare_tab.VERDICT_OK)


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    human = pick_set(root / "demos", 8, **HUMAN)
    policy = pick_set(root / "rollouts", 8, first_seed=100, **POLICY)
    mixed = root / "dataset"  # one folder holding both, for "by source"
    mixed.mkdir()
    for i in range(4):
        pick_episode(mixed / f"episode_{i + 1:06d}.h5", seed=i)
        pick_episode(mixed / f"episode_{i + 5:06d}.h5", seed=50 + i, source="policy", speed=0.6)
        # run-policy --speed 1.3, as the core notes it
        edit.label(mixed / f"episode_{i + 5:06d}.h5", notes="policy p.pt, " + RolloutOptions(speed=1.3).describe())
    return root, human, policy, mixed


@pytest.fixture
def tab(qtbot, sim_rig, sets):
    console = OperatorSession(sim_rig, sets[3])
    widget = CompareTab(SessionBridge(console))
    qtbot.addWidget(widget)
    widget.resize(1440, 860)
    widget.show()
    qtbot.waitExposed(widget)
    yield widget
    widget.shutdown()


def run(qtbot, tab, start=None):
    with qtbot.waitSignal(tab.compared, timeout=60_000) as blocker:
        assert (start or tab.compare)()
    return blocker.args[0]


def save_small_png(image: QtGui.QImage, path: Path) -> None:
    """PNG as it is, or with a 256-colour palette when that is over the limit."""
    image.save(str(path), "PNG")
    if path.stat().st_size > MAX_PNG_BYTES:
        image.convertToFormat(QtGui.QImage.Format.Format_Indexed8).save(str(path), "PNG")


def test_compares_two_folders_and_shows_why(qtbot, tab, sets, tmp_path):
    root, human, policy, _ = sets
    tab.set_sets(root / "demos", str(root / "rollouts" / "episode_*.h5"))
    qtbot.mouseClick(tab.compare_button, QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: tab.comparison is not None and not tab.busy, timeout=60_000)
    c = tab.comparison
    expected = compare_sets(human, policy)
    assert [x.id for x in c.causes] == [x.id for x in expected.causes] == ["idle_ends", "starvation"]

    # verdict and diagnosis, as text a person reads
    assert tab.verdict_label.text() == c.verdict and "The policy is slower on successes" in c.verdict
    assert c.verdict.startswith("The policy succeeded in 8 of 8 (100%), the demonstrations in 8 of 8 (100%).")
    assert GREEN not in tab.verdict_label.styleSheet()
    text = tab.diagnosis.toPlainText()
    assert "1. idle frames at the demos' ends" in text and "2. starvation while waiting for inference" in text
    assert "teleop-app episodes trim" in text and "Every check" in text
    assert "control-rate mismatch between recording and rollout: no" in text
    assert "jittery actions (a zig-zag path longer than the human's): partly (1 of 2 conditions)" in text
    assert tab.last_message == "Compared 8 human and 8 policy episode(s)."

    # the table: one row per metric with data, ratios as the comparison computed them
    shown = [m for m in METRICS if c.metrics[m.key].human.n or c.metrics[m.key].policy.n]
    assert tab.table.rowCount() == len(shown) + 1  # the successes' durations first: the verdict's comparison
    assert tab.table.item(0, 0).text() == "duration, successes (s)" and tab.ratio_text("speed") == fmt_ratio(c.speed)
    for m in shown:
        assert tab.ratio_text(m.key) == fmt_ratio(c.metrics[m.key])
    assert tab.ratio_text("starved_share") is not None and tab.ratio_text("duration_s").startswith(
        f"{expected.metrics['duration_s'].ratio:.2f}×")

    # speed bands: FillBetweenItem between p25 and p75, median curve on top
    for side in ("human", "policy"):
        band = tab.band_items[side]
        assert isinstance(band, pg.FillBetweenItem)
        lo, hi = band.curves
        np.testing.assert_allclose(lo.yData, c.profiles[side]["p25"])
        np.testing.assert_allclose(hi.yData, c.profiles[side]["p75"])
        np.testing.assert_allclose(tab.median_items[side].yData, c.profiles[side]["median"])
    # histograms: every episode counted once
    for side, n in (("human", 8), ("policy", 8)):
        assert tab.hist_items[side].opts["height"].sum() == n
    # phases: stacked bars of the mean reach/grasp/lift
    means = phase_means(c)
    for phase, item in tab.phase_items.items():
        np.testing.assert_allclose(item.opts["width"], [means["human"][phase], means["policy"][phase]])

    # screenshot for review
    QtWidgets.QApplication.processEvents()
    shot = tmp_path / "compare-tab.png"
    save_small_png(tab.grab().toImage(), shot)
    assert 0 < shot.stat().st_size <= MAX_PNG_BYTES
    image = QtGui.QImage(str(shot))
    assert image.width() == tab.width() and image.height() == tab.height()
    if os.environ.get("TELEOP_DOCS_SCREENSHOT") == "1":
        save_small_png(tab.grab().toImage(), DOCS / "compare-tab.png")
        assert (DOCS / "compare-tab.png").stat().st_size <= MAX_PNG_BYTES


def test_exports_png_and_html(qtbot, tab, sets, tmp_path):
    root, *_ = sets
    assert not tab.png_button.isEnabled() and tab.save_png(tmp_path / "none.png") is None  # nothing yet
    tab.set_sets(root / "demos", root / "rollouts")
    run(qtbot, tab)
    assert tab.png_button.isEnabled() and tab.report_button.isEnabled()
    png = tab.save_png(tmp_path / "cmp.png")
    image = QtGui.QImage(str(png))
    assert image.size() == tab.results.size()
    report = tab.save_report(tmp_path / "sub" / "cmp.html")
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"https?://", text) and "<svg" in text
    assert html.escape(tab.comparison.verdict) in text
    assert tab.last_message.startswith(f"Saved {report}")


def test_by_source_in_the_dataset_folder(qtbot, tab, sets):
    tab.set_by_source()
    assert not tab.human_edit.isEnabled() and "dataset:" in tab.source_label.text()
    c = run(qtbot, tab)
    assert [m.name for m in c.human] == [f"episode_{i:06d}.h5" for i in range(1, 5)]
    assert [m.name for m in c.policy] == [f"episode_{i:06d}.h5" for i in range(5, 9)]
    assert [x.id for x in c.causes] == ["small_actions"]
    assert "shrunken action magnitudes" in tab.diagnosis.toPlainText()
    assert "chunks executed at 1.3× (4 of 4) their planned speed" in tab.diagnosis.toPlainText()


def test_enter_in_a_field_compares_and_errors_are_messages(qtbot, tab, sets, tmp_path):
    root, *_ = sets
    tab.set_sets(root / "demos", tmp_path / "nothing*.h5")
    tab.policy_edit.setFocus()
    qtbot.keyClick(tab.policy_edit, QtCore.Qt.Key.Key_Return)
    assert "no episode files match" in tab.last_message and not tab.busy
    assert tab.comparison is None and tab.compare_button.isEnabled()

    tab.policy_edit.clear()
    assert not tab.compare_button.isEnabled()  # both sets are needed
    (tmp_path / "empty").mkdir()
    tab.set_sets(root / "demos", tmp_path / "empty")
    assert not tab.compare()
    assert tab.last_message == f"no episodes in {tmp_path / 'empty'}"

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "episode_000001.h5").write_bytes(b"garbage")
    tab.set_sets(root / "demos", broken)
    assert run(qtbot, tab) is None
    assert tab.last_message == "Could not compare: no readable policy episodes to compare"

    tab.set_sets(root / "demos", root / "rollouts")
    tab.policy_edit.setFocus()
    with qtbot.waitSignal(tab.compared, timeout=60_000):
        qtbot.keyClick(tab.policy_edit, QtCore.Qt.Key.Key_Return)
    assert tab.comparison is not None and tab.comparison.slower


def test_failing_rollouts_are_not_green(qtbot, tab, sets):
    """Rollouts as fast as the demos that never succeed, with a zig-zag path: the tab shows the analysis' verdict."""
    root, *_ = sets
    pick_set(root / "failing", 4, first_seed=300, source="policy", success="false", jitter=0.006)
    tab.set_sets(root / "demos", root / "failing")
    c = run(qtbot, tab)
    assert tab.verdict_label.text() == c.verdict
    assert c.verdict.startswith("The policy succeeded in 0 of 4 (0%), the demonstrations in 8 of 8 (100%).")
    assert "not slower" not in c.verdict and not c.ok
    assert GREEN not in tab.verdict_label.styleSheet()
    text = tab.diagnosis.toPlainText()
    assert "1. jittery actions (a zig-zag path longer than the human's)" in text
    assert "jittery actions (a zig-zag path longer than the human's): fires" in text
    assert "duration, failures (s): human –, policy" in text
    assert tab.ratio_text("speed") is None and tab.table.item(0, 0).text() == "duration, failures (s)"

    tab.set_sets(root / "demos", root / "demos")  # the demos against themselves: green
    c = run(qtbot, tab)
    assert c.ok and "No cause found" in c.verdict and GREEN in tab.verdict_label.styleSheet()


def test_help_lists_the_keys(tab):
    (title, keys), = tab.help_sections()
    assert title == "Compare tab" and ("Ctrl+Enter", "compare") in keys
