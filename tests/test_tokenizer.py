"""Action tokens: the worked RT-2 example, OpenVLA's digitize convention, property-based round trips."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.observation import ActionStats
from policies.tokenizer import ActionTokenizer

ACTION = [0.1, -0.05, 0.3, 0.0, 0.0, 0.0, 1.0]
LOW = [-0.5] * 3 + [-3.14] * 3 + [0.0]
HIGH = [0.5] * 3 + [3.14] * 3 + [1.0]


def test_uniform_worked_example():
    tok = ActionTokenizer(LOW, HIGH, n_bins=256)
    tokens = tok.tokenize(ACTION)
    assert tokens.tolist() == [153, 115, 204, 128, 128, 128, 255]
    back = tok.detokenize(tokens)
    err = np.abs(back - ACTION)
    # the positions and the gripper (ranges of 1) come back within 0.01; the ±3.14 rad dimensions
    # have steps of 6.28 / 255 = 0.0246 rad, so 0 comes back as 128 / 255 * 6.28 - 3.14 = 0.0123
    assert np.all(err[[0, 1, 2, 6]] < 0.01)
    np.testing.assert_allclose(back[3:6], 128 / 255 * 6.28 - 3.14)
    assert np.all(err <= tok.half_step + 1e-12)
    np.testing.assert_allclose(tok.half_step[3], 6.28 / 255 / 2)


def test_openvla_convention_by_hand():
    # x = 2 (a - low) / (high - low) - 1; d = np.digitize(x, linspace(-1, 1, 256)) counts the edges <= x:
    # edge i is -1 + 2 i / 255, so d = floor((x + 1) * 255 / 2) + 1 for x < 1, and 256 for x = 1.
    tok = ActionTokenizer(LOW, HIGH, convention="openvla")
    x = [0.2, -0.1, 0.6, 0.0, 0.0, 0.0, 1.0]
    d = [int(np.floor((xi + 1) * 255 / 2)) + 1 if xi < 1 else 256 for xi in x]
    assert d == [154, 115, 205, 128, 128, 128, 256]
    assert tok.tokenize(ACTION).tolist() == [di - 1 for di in d]
    with_vocab = ActionTokenizer(LOW, HIGH, convention="openvla", vocab_size=32000)
    ids = with_vocab.tokenize(ACTION)
    assert ids.tolist() == [32000 - di for di in d]  # the last 256 ids of the vocabulary
    assert with_vocab.token_range == (32000 - 256, 31999)
    # back through the centre of bin d - 1 (at most 254): centre j is -1 + (2 j + 1) / 255
    centres = [-1 + (2 * min(di - 1, 254) + 1) / 255 for di in d]
    expected = [0.5 * (c + 1) * (h - lo) + lo for c, lo, h in zip(centres, LOW, HIGH)]
    np.testing.assert_allclose(with_vocab.detokenize(ids), expected)
    np.testing.assert_allclose(tok.detokenize(tok.tokenize(ACTION)), expected)
    assert expected[6] == pytest.approx(0.99804, abs=1e-5)  # the top edge decodes to the last centre


def test_openvla_ranges_from_dataset_quantiles():
    stats = ActionStats(q01=np.array([-1.0, 0.0]), q99=np.array([1.0, 2.0]), min=np.array([-9.0, -9.0]),
                        max=np.array([9.0, 9.0]))
    tok = ActionTokenizer.from_stats(stats)
    np.testing.assert_array_equal(tok.low, [-1.0, 0.0])
    np.testing.assert_array_equal(tok.high, [1.0, 2.0])
    minmax = ActionTokenizer.from_stats(ActionStats(min=np.array([-2.0]), max=np.array([2.0])), convention="uniform")
    assert minmax.tokenize([2.0]).tolist() == [255]


def test_chunks_are_time_major():
    tok = ActionTokenizer(LOW, HIGH)
    chunk = np.array([ACTION, [-0.5, 0.5, 0.0, 3.14, -3.14, 0.0, 0.0]])
    tokens = tok.tokenize_chunk(chunk)
    assert tokens.tolist() == [153, 115, 204, 128, 128, 128, 255, 0, 255, 128, 255, 0, 128, 0]
    np.testing.assert_allclose(tok.detokenize_chunk(tokens), chunk, atol=tok.half_step.max() + 1e-12)
    with pytest.raises(ValueError, match="multiple of 7"):
        tok.detokenize_chunk(tokens[:-1])


def test_refuses_what_it_cannot_encode():
    tok = ActionTokenizer(LOW, HIGH)
    with pytest.raises(ValueError, match="NaN"):
        tok.tokenize([np.nan] + ACTION[1:])
    with pytest.raises(ValueError, match="7 dimensions"):
        tok.tokenize(ACTION[:6])
    with pytest.raises(ValueError, match="integers"):
        tok.detokenize(np.zeros(7))
    with pytest.raises(ValueError, match="high > low"):
        ActionTokenizer([0.0], [0.0])


@st.composite
def ranges_and_actions(draw, inside=True):
    dim = draw(st.integers(1, 8))
    low = np.array([draw(st.floats(-10, 10)) for _ in range(dim)])
    width = np.array([draw(st.floats(0.01, 20)) for _ in range(dim)])
    high = low + width
    k = draw(st.integers(1, 5))
    span = (0.0, 1.0) if inside else (-3.0, 4.0)
    u = np.array([[draw(st.floats(*span)) for _ in range(dim)] for _ in range(k)])
    return low, high, low + u * width


@pytest.mark.parametrize("convention", ["uniform", "openvla"])
@settings(max_examples=200, deadline=None)
@given(case=ranges_and_actions(), n_bins=st.sampled_from([2, 16, 256, 1024]))
def test_round_trip_within_half_a_bin(convention, case, n_bins):
    low, high, actions = case
    tok = ActionTokenizer(low, high, n_bins=n_bins, convention=convention)
    tokens = tok.tokenize_chunk(actions)
    lo, hi = tok.token_range
    assert tokens.min() >= lo and tokens.max() <= hi
    back = tok.detokenize_chunk(tokens)
    assert np.all(np.abs(back - actions) <= tok.half_step * (1 + 1e-9) + 1e-12)


@pytest.mark.parametrize("convention", ["uniform", "openvla"])
@settings(max_examples=200, deadline=None)
@given(case=ranges_and_actions(inside=False))
def test_out_of_range_values_clamp_to_the_edges(convention, case):
    low, high, actions = case
    tok = ActionTokenizer(low, high, convention=convention, vocab_size=50000 if convention == "openvla" else None)
    tokens = tok.tokenize(actions)
    np.testing.assert_array_equal(tokens, tok.tokenize(np.clip(actions, low, high)))
    back = tok.detokenize(tokens)
    assert np.all(back >= low - 1e-9) and np.all(back <= high + 1e-9)
    # tokens outside the range decode like the nearest valid one
    lo, hi = tok.token_range
    np.testing.assert_allclose(tok.detokenize(np.full(len(low), hi + 7)), tok.detokenize(np.full(len(low), hi)))
    np.testing.assert_allclose(tok.detokenize(np.full(len(low), lo - 7)), tok.detokenize(np.full(len(low), lo)))
