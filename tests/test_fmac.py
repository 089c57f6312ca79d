"""The fMAC column's golden half (fixar.golden.fmac) and its derived widths
(fixar.config.bfp.fmac_shape): a BFP dot product through the column's passes
is the exact product of the converted codes; the widths hold the worst case
and no more; the ``[bfp]`` section of the config."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from fixar.config import DEFAULT, ConfigError, FixarConfig
from fixar.config.bfp import CHUNK_BITS, BfpFormat, fmac_shape
from fixar.golden.bfp import to_bfp
from fixar.golden.fmac import chunk, column_trace, concat, dot_passes, group_passes, wrap

FRAC = DEFAULT.pe.act32.frac


def codes(rng, shape, spread=2.0):
    """Log-normal magnitudes around 1.0 in Q12.20, random signs."""
    mag = np.minimum(np.exp(rng.standard_normal(shape) * spread) * 2 ** FRAC, 2 ** 31 - 1)
    return (np.floor(mag) * rng.choice([-1, 1], shape)).astype(np.int64)


@pytest.mark.parametrize(("m_w", "m_a"), list(itertools.product((2, 4, 6, 8), repeat=2)))
def test_dot_product_is_the_exact_product_of_bfp_codes(m_w, m_a):
    rng = np.random.default_rng(m_w * 10 + m_a)
    sh = fmac_shape(DEFAULT)
    W, X = codes(rng, (3, 45)), codes(rng, (45, 2))
    W[1, 16:32] = 0                                     # an all-zero group
    wt = to_bfp(W, FRAC, BfpFormat(m_w), seed=11, axis=1)
    xt = to_bfp(X, FRAC, BfpFormat(m_a), seed=12, axis=0)
    Wq, Xq = wt.codes().reshape(W.shape), xt.codes().reshape(X.shape)
    exact = Wq.astype(object) @ Xq.astype(object)
    for i, j in itertools.product(range(3), range(2)):
        trace = dot_passes(DEFAULT, wt, xt, i, j)
        assert len(trace["valid"]) == 3 * (m_w // 2) * (m_a // 2)
        sums = column_trace(DEFAULT, trace)
        assert sums[-1] == exact[i, j] << sh.frac_extra


def test_chunks_recompose_every_mantissa():
    for m in (2, 4, 6, 8):
        n = m // CHUNK_BITS
        for x in range(-(1 << (m - 1)), 1 << (m - 1)):
            assert sum(chunk(x, k, k == n - 1) << (CHUNK_BITS * k) for k in range(n)) == x


def test_widths_hold_the_worst_case_tightly():
    """The largest |G| over any prefix of the passes fits group_bits with at
    most one bit to spare; the scale reaches exactly 0 and scale_max."""
    sh = fmac_shape(DEFAULT)
    worst = 0
    extremes = [-(1 << (sh.mant_bits - 1)), (1 << (sh.mant_bits - 1)) - 1, 0b01010101 - 256, 0b00111111]
    for w, a in itertools.product(extremes, repeat=2):
        trace = group_passes(sh, [w] * sh.rows, [a] * sh.rows, sh.mant_bits, sh.mant_bits, 0, True)
        g = 0
        for p, q in zip(trace["p"], trace["q"]):
            g += sh.rows * chunk(w, p, p == sh.chunks - 1) * chunk(a, q, q == sh.chunks - 1) << (2 * (p + q))
            worst = max(worst, abs(g))
    assert 1 << (sh.group_bits - 3) <= worst < 1 << (sh.group_bits - 1)
    top = np.full((1, 16), 2 ** 31 - 1, dtype=np.int64)
    hi = to_bfp(top, FRAC, BfpFormat(2), axis=1)
    assert int(dot_passes(DEFAULT, hi, hi, 0, 0)["scale"][0]) == sh.scale_max
    one = np.ones((1, 16), dtype=np.int64)
    lo = to_bfp(one, FRAC, BfpFormat(8), axis=1)
    assert int(dot_passes(DEFAULT, lo, lo, 0, 0)["scale"][0]) == 0


def test_wide_sum_wraps_like_a_register():
    sh = fmac_shape(DEFAULT)
    m = sh.mant_bits
    t = concat([group_passes(sh, [-(1 << (m - 1))] * sh.rows, [-(1 << (m - 1))] * sh.rows, m, m, sh.scale_max, True)])
    assert column_trace(DEFAULT, t) == [wrap((sh.rows << (2 * m - 2)) << sh.scale_max, sh.acc_bits)]


def test_mismatched_groups_are_refused():
    x = np.ones((1, 32), dtype=np.int64)
    with pytest.raises(ValueError, match="groups of 16"):
        dot_passes(DEFAULT, to_bfp(x, FRAC, BfpFormat(8, group=8), axis=1), to_bfp(x, FRAC, BfpFormat(8), axis=1), 0, 0)


def test_bfp_section_of_the_config():
    c = FixarConfig.from_dict({"bfp": {"widths": [2, 4], "mantissa_bits": 4, "group": 8}})
    assert c.digest != DEFAULT.digest and FixarConfig.from_json(c.to_json()) == c
    sh = fmac_shape(c)
    assert (sh.rows, sh.mant_bits, sh.chunks, sh.frac_extra) == (8, 4, 2, 4)
    # the default section leaves the digest of every config that predates it unchanged
    assert "bfp" not in DEFAULT.to_dict()
    with pytest.raises(ConfigError, match=r"^bfp\.widths: "):
        FixarConfig.from_dict({"bfp": {"widths": [3]}})
