import numpy as np
import pytest

from recordings.resample import grid, last_at_or_before


def test_grid_includes_both_ends_when_on_grid():
    np.testing.assert_allclose(grid(0.0, 0.5, 10), [0.0, 0.1, 0.2, 0.3, 0.4, 0.5])


def test_grid_stops_inside_the_range():
    np.testing.assert_allclose(grid(1.0, 1.25, 10), [1.0, 1.1, 1.2])


def test_grid_of_an_instant_is_one_time():
    np.testing.assert_allclose(grid(2.0, 2.0, 30), [2.0])


def test_grid_frame_i_is_start_plus_i_over_fps():
    g = grid(0.37, 3.0, 30)
    assert len(g) == 79  # floor(2.63 * 30) + 1
    np.testing.assert_array_equal(g, 0.37 + np.arange(79) / 30)


def test_grid_n_ticks_at_fps_give_n_times():
    ticks = np.arange(500) / 100.0
    assert len(grid(ticks[0], ticks[-1], 100)) == 500


@pytest.mark.parametrize("start,end,fps", [(1.0, 0.5, 10), (0.0, 1.0, 0), (0.0, np.nan, 10)])
def test_grid_rejects_bad_ranges(start, end, fps):
    with pytest.raises(ValueError):
        grid(start, end, fps)


def test_samples_exactly_on_grid_points_are_taken_at_that_point():
    samples = np.array([0.0, 0.1, 0.2, 0.3])
    np.testing.assert_array_equal(last_at_or_before(samples, grid(0.0, 0.3, 10)), [0, 1, 2, 3])


def test_on_grid_survives_float_rounding():
    # 0.1 * 3 = 0.30000000000000004 lies one ulp after the grid time 3 / 10.
    samples = np.array([0.0, 0.1, 0.2, 0.1 * 3])
    assert samples[3] > 3 / 10
    np.testing.assert_array_equal(last_at_or_before(samples, np.arange(4) / 10), [0, 1, 2, 3])


def test_jittery_samples_hand_computed():
    # A ~30 fps camera with jitter, sampled onto a 50 Hz grid.
    samples = np.array([0.003, 0.031, 0.071, 0.099, 0.135])
    g = np.arange(8) / 50  # 0, .02, .04, .06, .08, .10, .12, .14
    np.testing.assert_array_equal(last_at_or_before(samples, g), [0, 0, 1, 1, 2, 3, 3, 4])


def test_grid_before_first_sample_takes_the_first_sample():
    samples = np.array([1.0, 2.0])
    np.testing.assert_array_equal(last_at_or_before(samples, [0.0, 0.5, 0.999, 1.0, 1.5, 2.5]), [0, 0, 0, 0, 0, 1])


def test_equal_sample_times_take_the_last():
    np.testing.assert_array_equal(last_at_or_before(np.array([0.0, 0.5, 0.5, 1.0]), [0.5, 0.7]), [2, 2])


def test_grid_after_last_sample_holds_the_last():
    np.testing.assert_array_equal(last_at_or_before(np.array([0.0, 0.1]), [0.1, 5.0]), [1, 1])


def test_rejects_empty_or_unsorted_samples():
    with pytest.raises(ValueError):
        last_at_or_before(np.array([]), np.array([0.0]))
    with pytest.raises(ValueError):
        last_at_or_before(np.array([0.0, 0.2, 0.1]), np.array([0.0]))
