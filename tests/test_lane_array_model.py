"""The lane array's golden half (fixar.golden.lane_array), its layout
(fixar.compiler.lane_array) and its cycle model
(fixar.config.timing.lane_array_layer_cycles), on the host alone; the
generated array meets all three in tb/test_lane_array.py."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from fixar.compiler.lane_array import lay_out, read_back
from fixar.config import DEFAULT, load
from fixar.config.bfp import lane_array_shape
from fixar.config.timing import lane_array_layer_cycles
from fixar.golden.lane_array import layer_sums
from fixar.tb.test_lane_array import random_layer

SMALL = load("small")


@pytest.mark.parametrize(("m_w", "m_a"), list(itertools.product((2, 4, 6, 8), repeat=2)))
def test_sums_are_the_exact_products_of_the_bfp_codes(m_w, m_a):
    rng = np.random.default_rng(m_w * 10 + m_a)
    w, a = random_layer(DEFAULT, rng, 5, 37, 6, m_w, m_a)
    exact = w.codes().reshape(5, 37).astype(object) @ a.codes().reshape(6, 37).astype(object).T
    f = lane_array_shape(DEFAULT).lanes.fmac
    assert layer_sums(DEFAULT, w, a) == [[v << f.frac_extra for v in row] for row in exact.tolist()]


def test_layout_hands_every_sum_back_to_its_place():
    """Rows in the array's order (tiles, then lanes; the last pass's vectors
    only) carry the sums back to (output, vector)."""
    rng = np.random.default_rng(3)
    sh = lane_array_shape(SMALL)
    w, a = random_layer(SMALL, rng, 2 * sh.columns + 3, 40, 11, 4, 4)      # 3 output tiles, passes of 8 and 3 vectors
    layer = lay_out(SMALL, w, a)
    assert (layer.tiles, layer.groups, layer.passes, layer.last_lanes) == (3, 3, 2, 3)
    assert len(layer.w_words) == 9 and len(layer.a_words) == 6
    assert all(0 <= x < 1 << sh.w_word_bits for x in layer.w_words)
    assert all(0 <= x < 1 << sh.a_word_bits for x in layer.a_words)
    sums = layer_sums(SMALL, w, a)
    rows = [[sums[t * sh.columns + c][b * 8 + lane] if t * sh.columns + c < len(sums) else 0
             for c in range(sh.columns)] for t in range(3) for b in range(2) for lane in range(8 if b == 0 else 3)]
    assert read_back(SMALL, layer, rows) == sums
    with pytest.raises(ValueError, match="rows out of the lane array"):
        read_back(SMALL, layer, rows[:-1])


def test_a_layer_too_large_for_the_memories_is_refused_in_one_line():
    sh = lane_array_shape(SMALL)
    rng = np.random.default_rng(4)
    w, a = random_layer(SMALL, rng, 1, 16 * (sh.a_depth + 1), 1, 2, 2)
    with pytest.raises(ValueError, match=r"needs \d+ weight and \d+ activation words; the lane array has"):
        lay_out(SMALL, w, a)


def test_cycle_model():
    cols = lane_array_shape(DEFAULT).columns
    # one tile of one group, one vector: its passes, the fill, one lane out
    for m_w in (2, 4, 6, 8):
        assert lane_array_layer_cycles(DEFAULT, 1, 16, 1, m_w, 8) == m_w // 2 + 10
    # one vector: the activation width costs nothing
    for m_w in (2, 8):
        assert len({lane_array_layer_cycles(DEFAULT, 3 * cols, 64, 1, m_w, m_a) for m_a in (2, 4, 6, 8)}) == 1
    # outputs bound: 2-bit weights, 1 group, 16 vectors a pass at 2 bits: a cycle a vector per output tile
    assert lane_array_layer_cycles(DEFAULT, 2 * cols, 16, 32, 2, 2) == 2 * 32 - 16 + 1 + 10 + 16 - 1
    # passes bound: 8-bit weights over 8 groups, 4 vectors a pass: 32 cycles per (output tile, batch pass)
    assert lane_array_layer_cycles(DEFAULT, cols, 128, 8, 8, 8) == 2 * 32 + 10 + 4 - 1


def test_an_exponent_outside_its_field_is_refused_in_one_line():
    from fixar.config.bfp import BfpFormat
    from fixar.golden.bfp import to_bfp

    ones = np.ones((2, 16), dtype=np.int64)
    w = to_bfp(ones, 20, BfpFormat(4), axis=1, base=200)      # s_w = 202: past a signed 8-bit field
    a = to_bfp(ones[:1], 20, BfpFormat(4), axis=1)
    with pytest.raises(ValueError, match=r"weight group \(0, 0\): exponent 202 does not fit the lane array's 8-bit"):
        lay_out(SMALL, w, a)
