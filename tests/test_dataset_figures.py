"""A dataset's figures at a glance (``recordings.library.dataset_figures``) and their text in the Review tab."""

from __future__ import annotations

from pathlib import Path

import pytest

from recordings.library import EpisodeSummary, dataset_figures, free_space
from ui.review_state import figures_text, format_total

MB = 1024 * 1024
GB = 1024 * MB


def episode(name: str, success: str, seconds: float, size: int, kept: float | None = None) -> EpisodeSummary:
    return EpisodeSummary(path=Path(name), size_bytes=size, status="complete", success=success,
                          duration_s=seconds if kept is None else kept, full_duration_s=seconds)


def test_figures_count_outcomes_and_add_up_durations_and_sizes():
    rows = [
        episode("a.h5", "true", 600.0, 300 * MB),
        episode("b.h5", "true", 900.0, 450 * MB, kept=800.0),
        episode("c.h5", "false", 300.0, 150 * MB),
        episode("d.h5", "unknown", 1800.0, 900 * MB),
        EpisodeSummary(path=Path("e.h5"), size_bytes=4 * MB, damaged="e.h5: not an HDF5 file"),
    ]
    fig = dataset_figures(rows, free_bytes=18 * GB)
    assert (fig.episodes, fig.successes, fig.failures, fig.unlabelled, fig.damaged) == (5, 2, 1, 1, 1)
    assert fig.recorded_s == 3600.0 and fig.kept_s == 3500.0
    assert fig.size_bytes == 1804 * MB
    assert fig.bytes_per_hour == 1800 * MB  # the damaged file is no recording
    assert fig.hours_left == pytest.approx(10.24)
    text = figures_text(fig)
    assert text == ("<b>5 episode(s)</b>: <span style='color:#2e7d32'>2 success</span> · "
                    "<span style='color:#c62828'>1 failure</span> · 1 unlabelled · "
                    "<span style='color:#c62828'><b>1 damaged</b></span><br>"
                    "1 h 00 min recorded (58 min 20 s kept) · 1.8 GB on disk, 1.8 GB per hour · "
                    "18.0 GB free: about 10 h 14 min more")


def test_figures_without_recordings_or_disk_information():
    assert figures_text(dataset_figures([])) == "No episodes in this folder yet: record some in the Live tab."
    only_damaged = dataset_figures([EpisodeSummary(path=Path("x.h5"), size_bytes=10, damaged="x")], free_bytes=None)
    assert only_damaged.bytes_per_hour is None and only_damaged.hours_left is None
    assert figures_text(only_damaged).endswith("<br>0.0 s recorded · 10 B on disk")


def test_free_space_of_a_folder_not_made_yet(tmp_path):
    assert free_space(tmp_path / "not" / "yet") == free_space(tmp_path) > 0


@pytest.mark.parametrize("seconds, text", [(42.04, "42.0 s"), (725, "12 min 05 s"), (11220, "3 h 07 min")])
def test_total_durations(seconds, text):
    assert format_total(seconds) == text
