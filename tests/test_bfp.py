"""Block floating point: the config's validation, the golden converter
against a slow Fraction reference (random tensors and corners), the
unbiasedness of its stochastic rounding, FAST's r(X) and the error figures."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

import fixar.golden.bfp as bfp
from fixar.config import ConfigError
from fixar.config.bfp import MANTISSA_WIDTHS, BfpConfig, BfpFormat
from fixar.golden.bfp import bfp_quantize, bfp_words, bit_length, conversion_rel_err, fast_r, to_bfp

M32 = 0xFFFFFFFF


# ------------------------------------------------------------------ reference
def ref_hash(a: int) -> int:
    """Bob Jenkins' six-shift hash on Python ints (docs/numerics.md)."""
    a = (a + 0x7ED55D16 + (a << 12)) & M32
    a = (a ^ 0xC761C23C ^ (a >> 19)) & M32
    a = (a + 0x165667B1 + (a << 5)) & M32
    a = ((a + 0xD3A2646C) ^ (a << 9)) & M32
    a = (a + 0xFD7046C5 + (a << 3)) & M32
    return (a ^ 0xB55A4F09 ^ (a >> 16)) & M32


def ref_log2_floor(x: Fraction) -> int:
    e = 0
    while x >= 2:
        x, e = x / 2, e + 1
    while x < 1:
        x, e = x * 2, e - 1
    return e


def ref_convert(rows: list[list[int]], frac: int, fmt: BfpFormat, seed: int, base: int | None = None):
    """(mantissas per row padded to whole groups, offsets per row, base) by the
    rules of docs/bfp.md, one value at a time with Fractions."""
    g, m = fmt.group, fmt.mantissa_bits
    n_groups = -(-len(rows[0]) // g)
    groups = [[(r + [0] * (n_groups * g - len(r)))[k * g:(k + 1) * g] for k in range(n_groups)] for r in rows]
    exps = [[ref_log2_floor(Fraction(max(map(abs, grp)), 1 << frac)) if any(grp) else None for grp in row]
            for row in groups]
    found = [e for row in exps for e in row if e is not None]
    lo, hi = -(1 << (fmt.exp_bits - 1)), (1 << (fmt.exp_bits - 1)) - 1
    if base is None:
        base = max(found) - hi if found else 0
    mants, offs = [], []
    for r, (row, row_e) in enumerate(zip(groups, exps)):
        mants.append([])
        offs.append([])
        for k, (grp, e) in enumerate(zip(row, row_e)):
            off = lo if e is None else min(hi, max(lo, e - base))
            lsb = Fraction(2) ** (base + off - (m - 2))
            offs[-1].append(off)
            for j, q in enumerate(grp):
                y = Fraction(q, 1 << frac) / lsb
                if fmt.rounding == "nearest":
                    v = round(y)                    # Fraction rounds halves to even
                else:
                    key = ((r * n_groups + k) * g + j) & M32
                    w = ref_hash(seed ^ key) >> (32 - fmt.rnd_bits)
                    v = math.floor(y + Fraction(w, 1 << fmt.rnd_bits))
                mants[-1].append(max(-(1 << (m - 1)), min((1 << (m - 1)) - 1, v)))
    return mants, offs, base


def ref_codes(rows, frac, fmt, seed, base=None) -> list[list[int]]:
    mants, offs, base = ref_convert(rows, frac, fmt, seed, base)
    out = []
    for row, off in zip(mants, offs):
        vals = [Fraction(v) * Fraction(2) ** (base + off[j // fmt.group] - (fmt.mantissa_bits - 2) + frac)
                for j, v in enumerate(row)]
        assert all(v.denominator == 1 for v in vals)
        out.append([int(v) for v in vals[:len(rows[0])]])
    return out


def check_against_reference(q: np.ndarray, frac: int, fmt: BfpFormat, seed: int, base: int | None = None):
    t = to_bfp(q, frac, fmt, seed, axis=-1, base=base)
    rows = [list(map(int, r)) for r in q.reshape(-1, q.shape[-1])]
    mants, offs, rbase = ref_convert(rows, frac, fmt, seed, base)
    assert t.base == rbase
    assert t.offset.tolist() == offs
    assert t.mant.reshape(len(rows), -1).tolist() == mants
    vals = t.values().reshape(len(rows), -1)
    for row_v, row_m, off in zip(vals, mants, offs):
        for j, v in enumerate(row_v):
            lsb = Fraction(2) ** (rbase + off[j // fmt.group] - (fmt.mantissa_bits - 2))
            assert Fraction(v) == row_m[j] * lsb
    return t


def log_uniform_codes(rng, shape, top_bits: int) -> np.ndarray:
    """Signed codes spread over many binades, with zeros: exponent corners come up often."""
    mag = np.floor(2.0 ** rng.uniform(0, top_bits, shape)).astype(np.int64)
    mag[rng.random(shape) < 0.1] = 0
    return np.where(rng.random(shape) < 0.5, -mag, mag)


# ------------------------------------------------------------------- config
@pytest.mark.parametrize("kwargs, field", [
    ({"mantissa_bits": 3}, "bfp.mantissa_bits"), ({"mantissa_bits": 10}, "bfp.mantissa_bits"),
    ({"mantissa_bits": True}, "bfp.mantissa_bits"), ({"group": 0}, "bfp.group"), ({"group": 1.5}, "bfp.group"),
    ({"exp_bits": 0}, "bfp.exp_bits"), ({"exp_bits": 17}, "bfp.exp_bits"), ({"rounding": "rne"}, "bfp.rounding"),
    ({"rnd_bits": 0}, "bfp.rnd_bits"), ({"rnd_bits": 33}, "bfp.rnd_bits"),
])
def test_format_rejects(kwargs, field):
    with pytest.raises(ConfigError) as info:
        BfpFormat(**kwargs)
    msg = str(info.value)
    assert msg.startswith(field + ":") and "\n" not in msg


@pytest.mark.parametrize("kwargs, field", [
    ({"widths": []}, "bfp.widths"), ({"widths": [2, 3]}, "bfp.widths"), ({"widths": [4, 2]}, "bfp.widths"),
    ({"widths": [4, 8], "mantissa_bits": 2}, "bfp.mantissa_bits"), ({"group": -1}, "bfp.group"),
])
def test_config_rejects(kwargs, field):
    with pytest.raises(ConfigError) as info:
        BfpConfig(**kwargs)
    assert str(info.value).startswith(field + ":") and "\n" not in str(info.value)


def test_config_section():
    c = BfpConfig(widths=[2, 4, 8], mantissa_bits=4)     # a TOML list becomes a tuple
    assert c.widths == (2, 4, 8) and hash(c)
    assert c.format() == BfpFormat(4, 16, 5, "stochastic", 16)
    assert c.format(8).mantissa_bits == 8 and c.format().with_mantissa(2) == c.format(2)
    f = BfpFormat(6, exp_bits=3)
    assert (f.min_mantissa, f.max_mantissa, f.min_offset, f.max_offset) == (-32, 31, -4, 3)


# ------------------------------------------------------------------ against the reference
def test_words_follow_the_coordinate_scheme():
    w = bfp_words(0xDEADBEEF, 3, 2, 5, 16)
    for r in range(3):
        for k in range(2):
            for j in range(5):
                assert w[r, k, j] == ref_hash(0xDEADBEEF ^ ((r * 2 + k) * 5 + j)) >> 16


def test_bit_length_is_exact():
    x = np.array([0, 1, 2, 3, (1 << 53) - 1, 1 << 53, (1 << 53) + 1, (1 << 62) - 1, 1 << 62], dtype=np.int64)
    assert bit_length(x).tolist() == [int(v).bit_length() for v in x]


@pytest.mark.parametrize("m", MANTISSA_WIDTHS)
@pytest.mark.parametrize("rounding", ["stochastic", "nearest"])
def test_random_tensors_match_reference(m, rounding):
    rng = np.random.default_rng(m * 7 + len(rounding))
    for shape, g, e, frac, top in (((3, 37), 16, 4, 20, 32), ((4, 16), 16, 4, 20, 24), ((2, 23), 5, 2, 8, 40),
                                   ((2, 9), 1, 3, 0, 12), ((5, 20), 7, 8, 30, 61)):
        fmt = BfpFormat(m, g, e, rounding, rnd_bits=int(rng.integers(1, 33)))
        q = log_uniform_codes(rng, shape, top)
        check_against_reference(q, frac, fmt, seed=int(rng.integers(0, 1 << 32)))


def test_explicit_base_matches_reference():
    rng = np.random.default_rng(5)
    q = log_uniform_codes(rng, (3, 33), 30)
    for base in (-40, -14, -3, 4, 30):            # offsets saturate low, high, or both
        for rounding in ("stochastic", "nearest"):
            check_against_reference(q, 20, BfpFormat(4, rounding=rounding), seed=9, base=base)


def test_other_axes_group_along_the_reduction():
    rng = np.random.default_rng(3)
    q = log_uniform_codes(rng, (4, 19, 3), 30)
    fmt = BfpFormat(4, group=8)
    got = bfp_quantize(q, 20, fmt, seed=11, axis=1)
    rows = np.moveaxis(q, 1, -1).reshape(-1, 19)
    want = np.array(ref_codes([list(map(int, r)) for r in rows], 20, fmt, 11))
    assert got.shape == q.shape
    assert np.array_equal(np.moveaxis(got, 1, -1).reshape(-1, 19), want)


# ------------------------------------------------------------------ corners
@pytest.mark.parametrize("m", MANTISSA_WIDTHS)
def test_all_zero_groups(m):
    q = np.zeros((2, 40), dtype=np.int64)
    q[1, 20] = 12345
    for rounding in ("stochastic", "nearest"):
        t = check_against_reference(q, 20, BfpFormat(m, exp_bits=4, rounding=rounding), seed=1)
        assert t.offset[0].tolist() == [-8, -8, -8] and t.offset[1].tolist() == [-8, 7, -8]
        assert not t.mant[0].any() and np.count_nonzero(t.mant[1]) == 1
    t = to_bfp(np.zeros(5, dtype=np.int64), 20, BfpFormat(m), seed=2)
    assert t.base == 0 and t.offset.tolist() == [[-16]] and not t.codes().any()      # e = 5: the lowest is -16


@pytest.mark.parametrize("m", MANTISSA_WIDTHS)
def test_one_huge_value_among_tiny_ones(m):
    tiny = [3, -7, 1, 0, -1, 200, 5, -9, 11, 2, -2, 4, 6, -5, 8]
    q = np.array([[1 << 30] + tiny], dtype=np.int64)
    near = to_bfp(q, 20, BfpFormat(m, rounding="nearest"))
    assert near.mant[0, 0].tolist() == [1 << (m - 2)] + [0] * 15          # the tiny ones flush to 0
    lsb = 1 << (30 - (m - 2))
    seen = np.array([bfp_quantize(q, 20, BfpFormat(m), seed=s)[0, 1:] for s in range(400)])
    # stochastic: each tiny value becomes 0 or one LSB of its own sign, as often as its size says
    assert set(np.unique(seen)) <= {-lsb, 0, lsb}
    assert np.all(np.sign(seen) * np.sign(tiny) >= 0)
    check_against_reference(q, 20, BfpFormat(m), seed=77)


@pytest.mark.parametrize("m", MANTISSA_WIDTHS)
def test_saturating_mantissas(m):
    top = (1 << (m - 1)) - 1
    # group max at top + 1/2 LSB: nearest (a tie, to even = 2**(m-1)) and any
    # stochastic round-up saturate to 2**(m-1) - 1; the negative twin reaches -2**(m-1)
    k = 10
    x = (2 * top + 1) << (k - 1)
    q = np.array([[x, -x, 1 << k]], dtype=np.int64)
    for rounding in ("stochastic", "nearest"):
        for seed in range(8):
            t = check_against_reference(q, 0, BfpFormat(m, rounding=rounding), seed)
            lsb_exp = int(t.lsb_exp[0, 0])
            assert lsb_exp == k and t.mant[0, 0, 0] == top
            assert t.mant[0, 0, 1] in (-top, -top - 1)
    assert to_bfp(q, 0, BfpFormat(m, rounding="nearest")).mant[0, 0, 1] == -top - 1


def test_offset_saturation_bottom_flushes_and_top_saturates():
    q = np.array([[1 << 40] + [0] * 15 + [1 << 20] + [0] * 15 + [3] + [0] * 15], dtype=np.int64)
    t = check_against_reference(q, 20, BfpFormat(8, exp_bits=4, rounding="nearest"), 0)
    assert t.offset.tolist() == [[7, -8, -8]]                  # 20 binades below: clamped to the lowest
    assert t.lsb_exp[0, 1] == 5 - 6                             # the clamped exponent 2**5: LSB 2**-1
    assert t.codes()[0, 16] == 1 << 20                          # 1.0 is still 2 LSBs, exact...
    assert t.codes()[0, 32] == 0                                # ...but 3 LSBs of Q12.20 flush to 0
    # an explicit base below the data: the offset saturates at the top and the mantissa saturates
    t = check_against_reference(q, 20, BfpFormat(4, exp_bits=4, rounding="nearest"), 0, base=0)
    assert t.offset[0, 0] == 7 and t.mant[0, 0, 0] == 7
    with pytest.raises(ValueError, match="below the LSB"):
        to_bfp(np.array([3]), 1, BfpFormat(8, rounding="nearest")).codes(frac=0)     # 1.5 is no integer


def test_negative_extremes_and_input_range():
    big = (1 << 62) - 1
    q = np.array([[-big, big, -(1 << 31), 1, -1] + [0] * 11 + [-(1 << 31)] * 3], dtype=np.int64)
    for m in MANTISSA_WIDTHS:
        for rounding in ("stochastic", "nearest"):
            check_against_reference(q, 20, BfpFormat(m, rounding=rounding), 123)
    t = to_bfp(q, 20, BfpFormat(8, rounding="nearest"))
    assert t.mant[0, 0, :2].tolist() == [-128, 127]         # -(2**62 - 1) rounds to -2**7; its twin saturates
    t = to_bfp(np.array([-(1 << 31), 5]), 20, BfpFormat(8, rounding="nearest"))
    assert t.mant[0, 0, 0] == -64                            # a power of two lands at -2**(m-2)
    for bad in (1 << 62, -(1 << 62), np.iinfo(np.int64).min):
        with pytest.raises(ValueError, match="2\\*\\*62"):
            to_bfp(np.array([bad], dtype=np.int64), 20, BfpFormat())
    with pytest.raises(ValueError, match="seed"):
        to_bfp(np.array([1]), 0, BfpFormat(), seed=-1)


def test_nearest_ties_go_to_even():
    # LSB 2**2 codes: 6 = 1.5 LSB -> 2, 10 = 2.5 -> 2, -6 -> -2, 14 = 3.5 -> 4
    q = np.array([[16, 6, 10, -6, 14, 2, -2]], dtype=np.int64)
    t = to_bfp(q, 0, BfpFormat(4, rounding="nearest"))
    assert t.mant[0, 0, :7].tolist() == [4, 2, 2, -2, 4, 0, 0]


def test_scalar_empty_and_padding_roundtrip():
    assert bfp_quantize(np.int64(12345), 20, BfpFormat(8)).shape == ()
    for shape in ((0, 5), (3, 0), (2, 3, 0)):
        assert bfp_quantize(np.zeros(shape, dtype=np.int64), 20, BfpFormat(), axis=0).shape == shape
    q = np.arange(-17, 18, dtype=np.int64).reshape(5, 7)
    exact = BfpFormat(8, group=3)        # |q| < 2**6: every value fits a mantissa exactly
    assert np.array_equal(bfp_quantize(q, 20, exact, axis=0), q)
    assert np.array_equal(bfp_quantize(q, 20, exact, axis=1), q)


# ------------------------------------------------------------------ unbiasedness
def mean_error_test(seeds: int = 800) -> tuple[float, float]:
    """(z of the mean error over all elements and seeds, the worst per-element
    mean error in units of its standard-error bound) for stochastic BFP of a
    fixed tensor whose group maxima are exact mantissas (so nothing can saturate)."""
    rng = np.random.default_rng(42)
    q = rng.integers(-(1 << 24), 1 << 24, (8, 64))
    q[:, ::16] = 100 << 18                   # group max 100 LSB of 2**18 (m = 8): exact, never saturates
    fmt = BfpFormat(8)
    lsb = float(1 << 18)
    # random 32-bit seeds, as a host draws them: seeds 0, 1, 2... XORed with small
    # keys would reuse one word at permuted elements (docs/bfp.md, "Seeds")
    err = np.array([(bfp_quantize(q, 20, fmt, seed=int(s)) - q) / lsb
                    for s in rng.choice(1 << 32, seeds, replace=False)])
    z_all = err.mean() / (0.5 / math.sqrt(err.size))
    per = np.abs(err.mean(axis=0)) / (0.5 / math.sqrt(seeds))
    return float(z_all), float(per.max())


def test_stochastic_rounding_is_unbiased():
    z_all, worst = mean_error_test()
    # the per-error sd is at most 1/2 LSB; 4 sigma overall, 5 sigma per element (512 of them: p ~ 3e-4)
    assert abs(z_all) < 4 and worst < 5


def test_planted_bias_fails_the_unbiasedness_test(monkeypatch):
    def half_noise(q, s, w, R):      # noise at half its scale: rounds up too rarely
        r = np.minimum(s, R)
        return ((q >> np.minimum(s - r, 63)) + (w >> (R - r + 1))) >> r
    monkeypatch.setattr(bfp, "_stochastic", half_noise)
    monkeypatch.setenv("FIXAR_NO_NUMBA", "1")       # the numpy route, where the bug is planted
    z_all, worst = mean_error_test(200)
    assert abs(z_all) > 4 or worst > 5


# ------------------------------------------------------------------ r(X) and figures
def test_fast_r_matches_reference():
    rng = np.random.default_rng(8)
    q = rng.integers(-(1 << 22), 1 << 22, (4, 40))
    lo, hi = BfpFormat(2), BfpFormat(4)
    a = ref_codes([list(map(int, r)) for r in q], 20, lo, 17)
    b = ref_codes([list(map(int, r)) for r in q], 20, hi, 17)
    num = sum(abs(x - y) for ra, rb in zip(a, b) for x, y in zip(ra, rb))
    den = abs(sum(map(sum, a)))
    assert fast_r(q, 20, lo, hi, seed=17) == num / den
    assert fast_r(q, 20, hi, hi, seed=17) == 0.0
    assert fast_r(np.zeros(8, dtype=np.int64), 20, lo, hi) == 0.0
    # a tensor that BFP2 sums to 0 while BFP4 differs: r is infinite
    assert fast_r(np.array([2 << 20, -(2 << 20), 1 << 20, -(1 << 20)]), 20, BfpFormat(2, rounding="nearest"),
                  BfpFormat(4, rounding="nearest")) == math.inf


def test_fast_r_falls_with_width():
    rng = np.random.default_rng(4)
    q = np.abs(rng.integers(-(1 << 22), 1 << 22, (16, 64)))     # same-signed, like ReLU outputs
    r = [fast_r(q, 20, BfpFormat(m), BfpFormat(8), seed=3) for m in (2, 4, 6)]
    assert r[0] > r[1] > r[2] > 0


def test_conversion_error_figures():
    f = conversion_rel_err(shape=(64, 64))
    for rounding in ("", "nearest_"):
        errs = [f[f"bfp_conversion_rel_err_{rounding}m{m}"] for m in MANTISSA_WIDTHS]
        assert all(a > 2.5 * b for a, b in zip(errs, errs[1:]))      # about 4x per 2 bits
    assert f["bfp_conversion_rel_err_m8"] < 0.02
    assert all(f[f"bfp_conversion_rel_err_nearest_m{m}"] < f[f"bfp_conversion_rel_err_m{m}"]
               for m in MANTISSA_WIDTHS)


@pytest.mark.skipif(bfp._kernels() is None, reason="numba is not available here")
def test_the_numba_route_gives_the_numpy_routes_codes(monkeypatch):
    """bfp_quantize's numba pass against its numpy code (FIXAR_NO_NUMBA=1) on
    random tensors: 1-3 axes, any reduction axis, magnitudes up to 2^61,
    all-zero tensors, every width and both roundings, odd group sizes, 2-8
    exponent bits, 1-32 random bits, seeds over all 32 bits."""
    rng = np.random.default_rng(11)
    for trial in range(300):
        shape = tuple(int(x) for x in rng.integers(1, 40, rng.integers(1, 4)))
        mag = int(rng.integers(1, 62))
        q = rng.integers(-(1 << mag) + 1, 1 << mag, shape) >> rng.integers(0, mag, shape)
        if trial % 7 == 0:
            q[...] = 0
        fmt = BfpFormat(int(rng.choice(MANTISSA_WIDTHS)), int(rng.choice([1, 3, 5, 7, 16])), int(rng.integers(2, 9)),
                        str(rng.choice(["stochastic", "nearest"])), int(rng.integers(1, 33)))
        frac, seed = int(rng.integers(0, 40)), int(rng.integers(0, 1 << 32))
        axis = int(rng.integers(-len(shape), len(shape)))
        got = bfp_quantize(q, frac, fmt, seed, axis)
        monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
        want = bfp_quantize(q, frac, fmt, seed, axis)
        monkeypatch.delenv("FIXAR_NO_NUMBA")
        assert np.array_equal(got, want), (trial, shape, fmt, frac, axis)


def test_with_enough_exponent_bits_a_group_converts_alone():
    """With 2^e >= the codes' bits the per-tensor base never clips an offset,
    so a group's BFP value depends on the group and its words' keys alone:
    what lets the engine convert groups as they stream past. At e = 4 the
    largest Q12.20 code elsewhere in the tensor coarsens groups of one LSB."""
    rng = np.random.default_rng(7)
    tiny = rng.integers(-8, 8, (4, 32))
    tiny[:, 0] = 1                                          # E = -20, the lowest exponent a code has
    both = np.vstack([tiny, np.full((1, 32), -(1 << 31))])   # E = 11, the highest: a span of 31 binades
    for e, local in ((5, True), (4, False)):
        assert BfpConfig(exp_bits=e).group_local(32) == local
        for rounding in ("stochastic", "nearest"):
            fmt = BfpFormat(4, exp_bits=e, rounding=rounding)
            alone = bfp_quantize(tiny, 20, fmt, 9)
            assert np.array_equal(bfp_quantize(both, 20, fmt, 9)[:4], alone) == local, (e, rounding)
    assert not BfpConfig(exp_bits=5).group_local(33)
