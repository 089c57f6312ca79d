"""The lane column's golden half (fixar.golden.fmac_lanes) and its shape
(fixar.config.bfp.lane_shape): several batch vectors' BFP dot products in
m_w / 2 passes a group, each lane the exact product of the converted codes;
unused lanes and unknown widths add nothing; the products per cycle."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from fixar.config import DEFAULT
from fixar.config.bfp import BfpFormat, lane_shape
from fixar.golden.bfp import to_bfp
from fixar.golden.fmac_lanes import lane_dot_passes, lane_mantissa, lane_trace, pack_word

FRAC = DEFAULT.pe.act32.frac


def codes(rng, shape, spread=2.0):
    """Log-normal magnitudes around 1.0 in Q12.20, random signs."""
    mag = np.minimum(np.exp(rng.standard_normal(shape) * spread) * 2 ** FRAC, 2 ** 31 - 1)
    return (np.floor(mag) * rng.choice([-1, 1], shape)).astype(np.int64)


@pytest.mark.parametrize(("m_w", "m_a"), list(itertools.product((2, 4, 6, 8), repeat=2)))
def test_every_lane_is_the_exact_product_of_bfp_codes(m_w, m_a):
    rng = np.random.default_rng(m_w * 10 + m_a)
    sh = lane_shape(DEFAULT)
    lanes = sh.lanes(m_a)
    W, X = codes(rng, (2, 45)), codes(rng, (45, lanes + 1))
    W[1, 16:32] = 0                                     # an all-zero weight group
    X[:16, 0] = 0                                       # an all-zero activation group
    wt = to_bfp(W, FRAC, BfpFormat(m_w), seed=11, axis=1)
    xt = to_bfp(X, FRAC, BfpFormat(m_a), seed=12, axis=0)
    exact = wt.codes().reshape(W.shape).astype(object) @ xt.codes().reshape(X.shape).astype(object)
    for i in range(2):
        for js in (list(range(lanes)), [lanes, 0]):     # full lanes, and two vectors with the rest idle
            trace = lane_dot_passes(DEFAULT, wt, xt, i, js)
            assert len(trace["valid"]) == 3 * (m_w // 2)
            sums = lane_trace(DEFAULT, trace)
            assert len(sums) == 3
            want = [exact[i, j] << sh.fmac.frac_extra for j in js] + [0] * (sh.max_lanes - len(js))
            assert list(sums[-1]) == want


def test_lane_mantissas_unpack_what_was_packed():
    rng = np.random.default_rng(1)
    for m_a in (2, 4, 6, 8):
        n = lane_shape(DEFAULT).lanes(m_a)
        mants = rng.integers(-(1 << (m_a - 1)), 1 << (m_a - 1), n).tolist()
        word = pack_word(mants, m_a)
        assert 0 <= word < 1 << 32
        assert [lane_mantissa(word, lane, m_a) for lane in range(n)] == mants


def test_unknown_width_adds_nothing_and_g_holds_between_passes():
    sh = lane_shape(DEFAULT)
    rows, lanes = sh.fmac.rows, sh.max_lanes
    base = {"valid": [1, 0, 1], "p": [0, 0, 0], "w_top": [1, 1, 1], "first": [1, 0, 0], "last": [0, 0, 1],
            "clear": [0, 0, 1], "wm": [[1] * rows] * 3, "aw": [[1] * rows] * 3, "scale": [[0] * lanes] * 3}
    ok = {k: np.asarray(v) for k, v in base.items()} | {"a_sel": np.asarray([0, 0, 0])}
    # m_a = 2: lane 0 holds 1, so each pass adds rows x 1; the idle cycle adds nothing
    assert lane_trace(DEFAULT, ok)[-1][0] == 2 * rows
    bad = ok | {"a_sel": np.asarray([len(DEFAULT.bfp.widths)] * 3)}
    assert lane_trace(DEFAULT, bad) == [(0,) * lanes]


def test_products_per_cycle_by_width():
    sh = lane_shape(DEFAULT)
    assert sh.multipliers == DEFAULT.pe.act32.bits // 2
    got = {(w, a): sh.products_per_cycle(w, a) for w in (2, 4, 6, 8) for a in (2, 4, 6, 8)}
    assert got[(2, 2)] == 16 and got[(4, 4)] == 4 and got[(8, 8)] == 1
    assert got[(2, 6)] == 5                             # five 6-bit lanes in a 32-bit word
    assert all(got[(w, a)] >= got[(w2, a2)] for (w, a), (w2, a2) in itertools.product(got, got)
               if w <= w2 and a <= a2)


def test_too_many_vectors_for_the_lanes_are_refused():
    rng = np.random.default_rng(2)
    W, X = codes(rng, (1, 16)), codes(rng, (16, 5))
    wt = to_bfp(W, FRAC, BfpFormat(8), seed=1, axis=1)
    xt = to_bfp(X, FRAC, BfpFormat(8), seed=2, axis=0)
    with pytest.raises(ValueError, match="5 batch vectors for 4 lanes"):
        lane_dot_passes(DEFAULT, wt, xt, 0, list(range(5)))

