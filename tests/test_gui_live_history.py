"""The Live tab's joint plots keep a continuous history while another tab is shown (real window, sim rig)."""

import numpy as np

from test_gui_live import console_window, rig_file, settings  # noqa: F401 (fixtures)


def test_plots_keep_their_history_while_another_tab_is_shown(qtbot, console_window):
    console, window = console_window
    plots = window.live.plots
    plots.window_s = 1.0  # the scenario of the 10 s window, at a tenth of the wait
    qtbot.waitUntil(lambda: plots.updates >= 3, timeout=5000)
    window.tabs.setCurrentWidget(window.review)
    # hidden for longer than the plot's window and than the tick queue holds (2 s of ticks)
    qtbot.wait(3000)
    shown = plots.updates
    window.tabs.setCurrentWidget(window.live)
    qtbot.waitUntil(lambda: plots.updates > shown + 2, timeout=5000)
    x, y = plots.curve_data(0)
    assert x.size > 50 and np.all(np.isfinite(y))
    assert x.min() < -0.9 and x.max() > -0.2  # the whole last second, up to now
    assert np.diff(x).max() < 0.3  # no hole where the tab was hidden


def test_plots_of_a_history_older_than_their_window_are_empty_not_an_error(qtbot):
    from drivers.types import RobotState, TickRecord
    from ui.joint_plots import JointPlots
    from ui.tick_history import TickHistory

    plots = JointPlots(("a", "b"), window_s=10.0)
    qtbot.addWidget(plots)
    history = TickHistory(2)
    q = np.array([0.1, 0.2])
    history.extend(TickRecord(tick=i, t=100.0 + 0.01 * i, t_sent=100.0 + 0.01 * i,
                              state=RobotState(t_host=100.0, joint_pos=q, joint_vel=0 * q, gripper=0.5,
                                               ee_pos=np.zeros(3)),
                              command=q, raw_input=None, input_kind="none", source="idle", safety=0, killed=False)
                   for i in range(50))
    plots.update_from(history, now=130.0)  # the loop has not ticked for 30 s
    assert plots.curve_data(0)[0].size == 0
    plots.update_from(history, now=101.0)
    assert plots.curve_data(0)[0].size == 50
