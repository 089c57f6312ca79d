"""The multiplier registry (issue 24, items 1-2): the functional models of
fixar.config.multipliers against hand-worked values and their papers'
error figures; the golden model's table and bit-plane routes (numba and
numpy) against the per-product model; the generator's circuits against the
model in Amaranth's simulator, exhaustively on 6 x 6 bits and randomly on
the PE's 32 x 17 and 32 x 16 lanes; and a planted wrong MBM constant caught
by both comparisons."""
from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import numpy as np
import pytest
from amaranth.back import rtlil
from amaranth.sim import Simulator

from fixar.config import DEFAULT, MULTIPLIERS, ConfigError, FixarConfig, PEConfig
from fixar.config import multipliers as models
from fixar.config.multipliers import KINDS, REGISTRY, Multiplier
from fixar.gen.lib import multipliers as gen
from fixar.golden import multipliers as golden
from fixar.golden.fixed import numba_kernels

# Instances whose truncation, appended bits, carries and corrections all
# occur within 6-bit operands (the registry's m = 7 needs 9-bit ones).
NARROW = [Multiplier("mitchell3", "mitchell", (("m", 3),)), Multiplier("mbm2", "mbm", (("m", 2),)),
          Multiplier("mbm3", "mbm", (("m", 3),)), Multiplier("drum3", "drum", (("k", 3),)),
          Multiplier("trunc4", "truncated", (("p", 4),))]
MBM3 = NARROW[2]
ALL = list(REGISTRY.values()) + NARROW
APPROX = [s for s in REGISTRY.values() if s.kind != "exact"] + NARROW
PLANTED = Multiplier("mbm3_bad", "mbm", (("m", 3), ("corr", 4)))     # C = 4/64 instead of 5/64
PLANTED_WIDE = Multiplier("mbm_bad", "mbm", (("m", 7), ("corr", 4)))
SIX = [(a, b) for a in range(-32, 32) for b in range(-32, 32)]
LANES = [(32, 17), (32, 16)]     # weight x low lane (unsigned in FXP32: 17 signed bits), weight x high/FXP16 lane


def _log_uniform(rng: random.Random, bits: int, n: int) -> list[int]:
    """Signed values whose bit length is uniform (every leading-one position
    and the truncation paths occur), plus the extremes of the width."""
    out = [-(1 << (bits - 1)), (1 << (bits - 1)) - 1, 0, 1, -1]
    for _ in range(n - len(out)):
        v = rng.randrange(1 << rng.randrange(bits - 1))
        out.append(-v if rng.random() < 0.5 else v)
    return out


def _model_matmul(spec: Multiplier, W: np.ndarray, X: np.ndarray) -> np.ndarray:
    prod = spec.product
    return np.array([[sum(prod(int(W[i, k]), int(X[k, n])) for k in range(W.shape[1]))
                      for n in range(X.shape[1])] for i in range(W.shape[0])], dtype=object)


# --- the registry and the config -------------------------------------------

def test_registry_names_and_both_halves_cover_every_kind():
    assert MULTIPLIERS == tuple(REGISTRY) and MULTIPLIERS[0] == "exact"
    assert set(gen.GENERATORS) == set(KINDS)
    for spec in REGISTRY.values():       # each has a golden route (raises otherwise)
        golden.approx_matmul(np.ones((1, 1), np.int64), np.ones((1, 1), np.int64), spec.name, (4, 4))


def test_config_field_is_validated_and_keeps_the_digests():
    assert DEFAULT.pe.multiplier == "exact" and "multiplier" not in DEFAULT.to_dict()["pe"]
    manifest = json.loads((Path(__file__).resolve().parent.parent / "rtl" / "manifest.json").read_text())
    assert manifest["config_digest"] == DEFAULT.digest      # the shipped rtl/'s config: unchanged by the field
    cfg = DEFAULT.variant(pe=dataclasses.replace(DEFAULT.pe, multiplier="mbm"))
    assert cfg.to_dict()["pe"]["multiplier"] == "mbm" and cfg.digest != DEFAULT.digest
    assert FixarConfig.from_json(cfg.to_json()) == cfg
    assert FixarConfig.from_dict({"pe": {"multiplier": "drum6"}}).pe.multiplier == "drum6"
    with pytest.raises(ConfigError, match="pe.multiplier: 'booth' is not one of"):
        PEConfig(multiplier="booth")
    assert "lut_product_bits" not in DEFAULT.to_dict()["pe"]       # the exact split's field, likewise
    whole = DEFAULT.variant(pe=dataclasses.replace(DEFAULT.pe, lut_product_bits=0))
    assert whole.to_dict()["pe"]["lut_product_bits"] == 0 and whole.digest != DEFAULT.digest
    with pytest.raises(ConfigError, match="pe.lut_product_bits"):
        PEConfig(lut_product_bits=-1)
    with pytest.raises(ValueError, match="k = 2 is outside"):
        Multiplier("drum2", "drum", (("k", 2),))


# --- the functional models ---------------------------------------------------

def test_models_on_hand_worked_values():
    # Mitchell 3 x 5: 2^(1+2) (1 + 0.5 + 0.25) = 14; with a carry 7 x 7: 2^5 (0.75 + 0.75) = 48
    assert models.mitchell(3, 5, 3) == 14 and models.mitchell(7, 7, 3) == 48
    # truncation to 2 fraction bits: 7 = 1.11b, 15 = 1.111b -> 1.11b: 2^(2+3+1) (0.75 + 0.75) = 96
    assert models.mitchell(7, 15, 2) == 96
    # MBM 3 x 5, m = 3 (F = 7): Mitchell's 14 + floor(5/64 2^3 + 0.625) = floor(14.625) = 14; 4 x 4: 16 + 1.25
    assert models.mbm(3, 5, 3) == 14 and models.mbm(4, 4, 3) == 17
    # DRUM-3: 100 = 1100100b -> 111b << 4 = 112; 5 has 3 bits and stays
    assert models.drum(100, 5, 3) == 560 and models.drum_operand(100, 3) == 112
    # truncated p = 4, 15 x 15: columns 0..3 hold 1 + 2*2 + 3*4 + 4*8 = 49 -> 225 - 49
    assert models.truncated(15, 15, 4) == 176 and models.truncated(15, 15, 0) == 225
    spec = REGISTRY["mitchell"]
    assert spec.product(-3, 5) == -spec.magnitude(3, 5) and spec.product(-3, -5) == spec.magnitude(3, 5)
    with pytest.raises(ValueError, match="not a 4-bit signed value"):
        spec.product(8, 1, 4, 4)


def test_models_match_their_papers_error_figures():
    """Relative error over uniform 16-bit magnitudes: Mitchell never above the
    exact product, at most 1/9 below, ~3.8 % on average (Mitchell 1962;
    here a little more with the operands truncated to m = 7 fraction bits); MBM's bias near 0 and mean
    error ~2.6 %; DRUM-6's mean error 1.47 % and near-zero bias (Hashemi 2015)."""
    rng = random.Random(5)
    pairs = [(rng.randrange(1, 1 << 16), rng.randrange(1, 1 << 16)) for _ in range(20000)]
    stats = {}
    for name in ("mitchell", "mbm", "drum6"):
        rel = [(REGISTRY[name].magnitude(a, b) - a * b) / (a * b) for a, b in pairs]
        stats[name] = (np.mean(rel), np.mean(np.abs(rel)), min(rel), max(rel))
    # 1/9 below at worst, plus each operand's truncation to 7 fraction bits (< 2^-7 relative each)
    assert stats["mitchell"][3] <= 0 and stats["mitchell"][2] > -(1 / 9 + 2 ** -6)
    assert 0.036 < stats["mitchell"][1] < 0.046
    assert abs(stats["mbm"][0]) < 0.004 and 0.02 < stats["mbm"][1] < 0.03
    assert abs(stats["drum6"][0]) < 0.002 and 0.013 < stats["drum6"][1] < 0.016


def test_products_fit_the_signed_product_width():
    """|approximate product| < 2^(wa + wb - 1): the product port of the
    exact multiplier holds every approximate one too."""
    for spec in ALL:
        for wa, wb in [(6, 6), *LANES]:
            ext = [-(1 << (wa - 1)), (1 << (wa - 1)) - 1, (1 << (wa - 2)) + 1]
            for a in ext:
                for b in (-(1 << (wb - 1)), (1 << (wb - 1)) - 1, (1 << (wb - 2)) + 1):
                    assert abs(spec.product(a, b)) < 1 << (wa + wb - 1), (spec.name, a, b)


# --- the golden half ---------------------------------------------------------

@pytest.fixture(params=["numba", "numpy"])
def route(request, monkeypatch):
    if request.param == "numpy":
        monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
    return request.param


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_golden_equals_model_exhaustively_on_8_bits(spec, route):
    """K = 1 turns the matrix product into every single product: all 8-bit
    signed pairs (windows of the narrow instances' tables and DRUM-6's
    included), through the route the matrix product takes."""
    v = np.arange(-128, 128)
    got = golden.approx_matmul(v[:, None], v[None, :], spec, (8, 8))
    want = np.array([[spec.product(a, b) for b in range(-128, 128)] for a in range(-128, 128)])
    assert (got == want).all()
    assert (golden.approx_multiply(v[:, None], v[None, :], spec, (8, 8)) == want).all()


@pytest.mark.parametrize("widths", LANES)
@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_golden_matmul_equals_model_on_random_layers(spec, widths, route):
    rng = random.Random(f"{spec.name}{widths}")
    W = np.array(_log_uniform(rng, widths[0], 12 * 30)).reshape(12, 30)
    X = np.array(_log_uniform(rng, widths[1], 30 * 5)).reshape(30, 5)
    assert (golden.approx_matmul(W, X, spec, widths).astype(object) == _model_matmul(spec, W, X)).all()
    # the uniform case too (large operands: the windows' truncated path)
    Wu = np.array([rng.randrange(-(1 << (widths[0] - 1)), 1 << (widths[0] - 1)) for _ in range(8 * 20)])
    Xu = np.array([rng.randrange(-(1 << (widths[1] - 1)), 1 << (widths[1] - 1)) for _ in range(20 * 3)])
    Wu, Xu = Wu.reshape(8, 20), Xu.reshape(20, 3)
    assert (golden.approx_matmul(Wu, Xu, spec, widths).astype(object) == _model_matmul(spec, Wu, Xu)).all()


def _threaded_operands():
    """A product above the threads' thresholds, 33 rows (an uneven split), W
    the sparser (so it stays the outer operand)."""
    rng = np.random.default_rng(5)
    W = rng.integers(-(1 << 31), 1 << 31, (33, 900)) >> rng.integers(0, 31, (33, 900))
    X = rng.integers(-(1 << 16), 1 << 16, (900, 64)) >> rng.integers(0, 16, (900, 64))
    assert np.count_nonzero(W) < np.count_nonzero(X)
    return W, X


def test_the_threaded_table_route_gives_the_numpy_routes_bits(monkeypatch):
    """The table route (which no registry entry takes any more: called
    directly) split over two threads against the numpy route (which the
    tests above tie to the model); the split must have run."""
    from fixar.golden import adam
    if numba_kernels() is None:
        pytest.skip("numba is not available: the numpy route is the only one")
    W, X = _threaded_operands()
    assert np.count_nonzero(W) * X.shape[1] >= golden._PARALLEL_LOOKUPS
    splits = []
    real = adam.run_parallel
    monkeypatch.setattr(adam, "run_parallel", lambda n, tasks, fn: splits.append(tasks) or real(n, tasks, fn))
    monkeypatch.setenv("FIXAR_THREADS", "2")
    threaded = golden.table_matmul(W, X, REGISTRY["drum6"])
    assert splits == [[(0, 16), (16, 33)]]
    monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
    assert (threaded == golden.table_matmul(W, X, REGISTRY["drum6"])).all()


def _log_operands(spec, W, X):
    """The numba loop's arguments for W (outer) and X (inner)."""
    from fixar.golden import multiplier_routes as routes
    return (routes.correction_word(spec), routes.float_words(W, spec, outer=True),
            routes.float_words(X, spec, outer=False))


@pytest.mark.parametrize("name", ["mitchell", "mbm"])
def test_the_parallel_log_loop_gives_the_one_thread_bits(name, monkeypatch):
    """The log route's rows interleaved over prange iterations: every row
    written, with the one-thread loop's bits, for splits of 2, 3 and 5 (more
    than this machine's threads too: prange still runs them all); through
    the route on FIXAR_THREADS=2 (the parallel loop asked for two threads,
    the threshold lowered to this product) against the numpy route; and
    FIXAR_THREADS=1 (or the user's OMP_NUM_THREADS=1) runs the one-thread
    loop, no pool."""
    if numba_kernels() is None:
        pytest.skip("numba is not available: the numpy route is the only one")
    import numba

    from fixar.golden import multiplier_kernels as kernels
    from fixar.golden import multiplier_routes as routes
    spec = REGISTRY[name]
    W, X = _threaded_operands()
    cw, outer, inner = _log_operands(spec, W, X)
    want = np.empty((W.shape[0], X.shape[1]), dtype=np.int64)
    kernels.log(cw, outer, inner, want)
    for parts in (2, 3, 5):
        got = np.full_like(want, -1)
        kernels.log_parallel(cw, outer, inner, got, parts)
        assert np.array_equal(got, want), parts
    asked, launched = [], []
    real_run, real_parallel = kernels.run_log, kernels.log_parallel
    monkeypatch.setattr(kernels, "run_log", lambda *a: asked.append(a[-1]) or real_run(*a))
    monkeypatch.setattr(kernels, "log_parallel", lambda *a: launched.append(a[-1]) or real_parallel(*a))
    monkeypatch.setattr(routes, "_PARALLEL_PRODUCTS", np.count_nonzero(W) * X.shape[1])
    monkeypatch.setenv("FIXAR_THREADS", "2")
    threaded = routes.log_matmul(W, X, spec)
    assert asked == [2] and launched == ([2] if numba.config.NUMBA_NUM_THREADS >= 2 else [])
    for var in ("FIXAR_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv("FIXAR_THREADS")
        monkeypatch.setenv(var, "1")
        asked.clear(), launched.clear()
        assert np.array_equal(routes.log_matmul(W, X, spec), threaded)
        assert asked == [1] and launched == [], var
        monkeypatch.setenv("FIXAR_THREADS", "2")
    monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
    assert np.array_equal(routes.log_matmul(W, X, spec), threaded)


def test_the_parallel_log_loop_takes_python_threads_in_turn():
    """numba's workqueue layer aborts the process when two threads launch
    at once: run_log's lock makes concurrent callers (the Adam pool, a
    user's threads) wait, with the bits of one thread."""
    import threading
    if numba_kernels() is None:
        pytest.skip("numba is not available: the numpy route is the only one")
    from fixar.golden import multiplier_kernels as kernels
    W, X = _threaded_operands()
    cw, outer, inner = _log_operands(REGISTRY["mbm"], W, X)
    want = np.empty((W.shape[0], X.shape[1]), dtype=np.int64)
    kernels.log(cw, outer, inner, want)
    same = []

    def run():
        got = np.empty_like(want)
        for _ in range(20):
            kernels.run_log(cw, outer, inner, got, 2)
        same.append(np.array_equal(got, want))
    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert same == [True] * 3


def _fields(fraction, lead, negative):
    """Packed words of the numpy route (fraction | lead << 24 | negative << 63)."""
    return (np.asarray(fraction, np.int64) | (np.asarray(lead, np.int64) << 24)
            | (np.asarray(negative, np.int64) << 63))


def _float_words(fraction, lead, negative, F, bias):
    """The same fields as the numba route's float words (fixar.golden.multiplier_kernels)."""
    return (np.asarray(fraction, np.int64) << (52 - F)) | ((np.asarray(lead, np.int64) + bias) << 52) \
        | (np.asarray(negative, np.int64) << 63)


@pytest.mark.parametrize("spec", [REGISTRY["mitchell"], REGISTRY["mbm"], *NARROW[:3],
                                  Multiplier("mitchell11", "mitchell", (("m", 11),)),
                                  Multiplier("mbm11", "mbm", (("m", 11),))], ids=lambda s: s.name)
def test_the_log_loops_products_are_the_models_on_every_fraction_sum(spec):
    """The numba loop's product (an add of float words and a truncation, not
    log_mantissa) against the numpy route's (the model's log_mantissa on
    arrays) for every pair of fraction codes (every fraction sum below
    2^(F+1), with and without the carry; a sample of them at F = 11),
    leading-one sums from 0 to the route's bound (around F too, where the
    truncation drops bits), all four sign pairs: an outer column of words
    times an inner row, one product per output (K = 1). The zero inner word
    gives 0 with every outer word."""
    from fixar.golden import multiplier_kernels as kernels
    from fixar.golden import multiplier_routes as routes
    if numba_kernels() is None:
        pytest.skip("numba is not available: the numpy route is the only one")
    F = spec.log.bits
    fractions = np.arange(1 << F) if F <= 8 else np.unique(np.r_[np.arange(64), (1 << F) - 1 - np.arange(64),
                                                                    np.random.default_rng(F).integers(0, 1 << F, 256)])
    top = 60 - F                    # log_route_fits: lead sums up to 60 - F
    a_leads, b_leads = [0, 1, F, top // 2], [0, 2, F - 1, top - top // 2]
    fa, ta, sa = (g.reshape(-1) for g in np.meshgrid(fractions, a_leads, [0, 1], indexing="ij"))
    fb, tb, sb = (g.reshape(-1) for g in np.meshgrid(fractions, b_leads, [0, 1], indexing="ij"))
    outer = _float_words(fa, ta, sa, F, kernels.OUTER_BIAS)[:, None]
    inner = np.r_[_float_words(fb, tb, sb, F, 0), kernels.ZERO_INNER][None, :]
    out = np.empty((outer.shape[0], inner.shape[1]), np.int64)
    kernels.log(routes.correction_word(spec), outer, inner, out)
    want = routes._unpacked_products(_fields(fa, ta, sa)[:, None] + _fields(fb, tb, sb)[None, :], spec)
    assert np.array_equal(out[:, :-1], want)
    assert not out[:, -1].any()


@pytest.mark.parametrize("name", ["mitchell", "mbm"])
def test_float_words_carry_the_numpy_routes_fields(name):
    """The numba route's words (its two passes) hold the numpy route's
    fields (fixar.golden.multiplier_routes.packed_fields) on every
    leading-one position, both signs, zeros and the width's extremes, as
    outer and as inner words, from a C-ordered matrix and from a transposed
    view."""
    from fixar.golden import multiplier_kernels as kernels
    from fixar.golden import multiplier_routes as routes
    if numba_kernels() is None:
        pytest.skip("numba is not available: the numpy route is the only one")
    spec, rng = REGISTRY[name], random.Random(name)
    F = spec.log.bits
    V = np.array(_log_uniform(rng, 32, 4030) + [0, 1, -1, (1 << 31) - 1, -(1 << 31)] * 2).reshape(40, 101)
    fields = routes.packed_fields(V, spec, 0)
    frac, lead, negative = fields & ((1 << 24) - 1), (fields >> 24) & 0xFF, (fields < 0).astype(np.int64)
    for outer, bias, zero in ((True, kernels.OUTER_BIAS, kernels.ZERO_OUTER), (False, 0, kernels.ZERO_INNER)):
        want = np.where(V != 0, _float_words(frac, lead, negative, F, bias), zero)
        assert np.array_equal(routes.float_words(V, spec, outer), want), outer
        assert np.array_equal(routes.float_words(np.ascontiguousarray(V.T).T, spec, outer), want), outer


@pytest.mark.parametrize("widths", LANES)
@pytest.mark.parametrize("name", ["mitchell", "mbm", "drum6"])
def test_the_table_route_still_equals_the_model(name, widths, route):
    """The table route (ApproxTrain's, any model with table_bits) is what a
    new multiplier without a declared structure takes: kept exact."""
    spec, rng = REGISTRY[name], random.Random(f"table{name}{widths}")
    W = np.array(_log_uniform(rng, widths[0], 10 * 24)).reshape(10, 24)
    X = np.array(_log_uniform(rng, widths[1], 24 * 4)).reshape(24, 4)
    assert (golden.table_matmul(W, X, spec).astype(object) == _model_matmul(spec, W, X)).all()


def test_declared_structures_hold_for_every_pair_of_8_bit_magnitudes():
    """What the fast routes rely on (fixar.config.multipliers.Kind): a
    separable model is operand(a) operand(b); a log-sum one is log_product
    of its form (by definition: checked against a hand-worked value)."""
    for spec in ALL:
        if spec.operand is not None:
            op = spec.operand
            assert all(spec.magnitude(a, b) == op(a) * op(b) for a in range(256) for b in range(256)), spec.name
    assert models.log_product(7, 7, models.mitchell_form(3)) == 48
    assert REGISTRY["drum6"].operand is not None and REGISTRY["mbm"].log.corr == models.MBM_CORRECTION
    assert REGISTRY["trunc16"].operand is None and REGISTRY["trunc16"].log is None


@pytest.mark.parametrize("name", ["mitchell", "mbm", "drum6"])
def test_fast_routes_on_relu_like_layers_equal_the_model(name, route):
    """Half-zero operands as the training step has them (ReLU outputs and
    their gradients): the log route puts the sparser operand outside and
    skips its zeros; the inner operand's zeros, few (read as the operand 1,
    the products taken back) or many (masked in the loop); both
    orientations, against the per-product model."""
    spec, rng = REGISTRY[name], np.random.default_rng(len(name))
    W = rng.integers(-(1 << 20), 1 << 20, (24, 40)) >> rng.integers(0, 20, (24, 40))
    X = rng.integers(0, 1 << 16, (40, 20))
    W[0, :3] = 0                                   # a few zeros in the dense operand
    dense_zeros = np.where(rng.random(X.shape) < 0.5, 0, X)
    sparse_w = np.where(rng.random(W.shape) < 0.6, 0, W)
    for A, B, widths in ((W, dense_zeros, (32, 17)), (dense_zeros.T, W.T, (17, 32)), (sparse_w, dense_zeros, (32, 17))):
        got = golden.approx_matmul(A, B, spec, widths)
        assert (got.astype(object) == _model_matmul(spec, A, B)).all()


def test_the_log_route_leaves_operands_too_wide_for_its_int64_to_the_table_route(monkeypatch):
    """33 x 24-bit codes: MBM's mantissa << (ta + tb) could pass 2^63, so the
    table route (exact for any width it accepts) takes the product."""
    from fixar.golden import multiplier_routes
    spec = REGISTRY["mbm"]
    W = np.array([[-(1 << 32), (1 << 32) - 1], [12345, -7]])
    X = np.array([[(1 << 23) - 1], [-(1 << 23)]])
    assert not multiplier_routes.log_route_fits(W, X, spec)
    assert multiplier_routes.log_route_fits(W >> 3, X, spec)
    calls = []
    real = golden.table_matmul
    monkeypatch.setattr(golden, "table_matmul", lambda *a: calls.append(1) or real(*a))
    assert (golden.approx_matmul(W, X, spec, (33, 24)).astype(object) == _model_matmul(spec, W, X)).all()
    assert calls


def test_golden_rejects_out_of_range_codes():
    with pytest.raises(ValueError, match="outside 16-bit signed"):
        golden.approx_matmul(np.ones((1, 1), np.int64), np.full((1, 1), 1 << 15), "mbm", (32, 16))


def test_a_planted_wrong_mbm_constant_is_caught_by_the_golden_check(route):
    """A table built from MBM with C = 4/64 differs from the model with 5/64,
    on 6-bit products and in a random layer's sums."""
    v = np.arange(-32, 32)
    bad = golden.approx_matmul(v[:, None], v[None, :], PLANTED, (6, 6))
    want = np.array([[MBM3.product(int(a), int(b)) for b in v] for a in v])
    assert (bad != want).sum() > 100
    rng = random.Random(9)
    W = np.array(_log_uniform(rng, 32, 6 * 20)).reshape(6, 20)
    X = np.array(_log_uniform(rng, 17, 20 * 4)).reshape(20, 4)
    got = golden.approx_matmul(W, X, PLANTED_WIDE, (32, 17)).astype(object)
    assert (got != _model_matmul(REGISTRY["mbm"], W, X)).any()



# --- the generator half ------------------------------------------------------

def _simulate(spec: Multiplier, wa: int, wb: int, pairs: list[tuple[int, int]], pipelined: bool = False) -> list[int]:
    """The circuit's products of ``pairs``; ``pipelined``: a new pair every
    cycle, each product read the multiplier's latency later."""
    dut = gen.ApproxMultiplier(spec, wa, wb, pipelined)
    lat, got = dut.LATENCY, []

    async def bench(ctx):
        for i in range(len(pairs) + lat):
            if i < len(pairs):
                ctx.set(dut.a, pairs[i][0])
                ctx.set(dut.b, pairs[i][1])
            if i >= lat:
                got.append(ctx.get(dut.p))
            if pipelined:
                await ctx.tick()

    sim = Simulator(dut)
    if pipelined and lat:
        sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_generator_equals_model_exhaustively_on_6_bits(spec):
    assert _simulate(spec, 6, 6, SIX) == [spec.product(a, b) for a, b in SIX]


@pytest.mark.parametrize("name", MULTIPLIERS)
def test_generator_equals_model_on_the_lanes(name):
    spec, rng = REGISTRY[name], random.Random(len(name))
    for wa, wb in LANES:
        pairs = list(zip(_log_uniform(rng, wa, 150), _log_uniform(rng, wb, 150)))
        pairs += [(rng.randrange(-(1 << (wa - 1)), 1 << (wa - 1)), rng.randrange(-(1 << (wb - 1)), 1 << (wb - 1)))
                  for _ in range(100)]
        assert _simulate(spec, wa, wb, pairs) == [spec.product(a, b) for a, b in pairs], (wa, wb)


@pytest.mark.parametrize("spec", ALL, ids=lambda s: s.name)
def test_pipelined_generator_equals_model_with_a_new_pair_every_cycle(spec):
    """The registered multiplier (the PE's and the core's) against the model,
    a different pair each cycle: a value that skipped a cut would meet the
    next pair's and give a wrong product."""
    rng = random.Random(3)
    for wa, wb in ((6, 6), *LANES):
        pairs = list(zip(_log_uniform(rng, wa, 120), _log_uniform(rng, wb, 120)))
        got = _simulate(spec, wa, wb, pairs, pipelined=True)
        assert got == [spec.product(a, b) for a, b in pairs], (spec.name, wa, wb)


def test_a_planted_sign_that_skips_a_cut_is_caught(monkeypatch):
    """Planted: the product's sign passes the multiplier's second register
    unregistered, so it meets the next pair's magnitude."""
    real = gen.Cuts.__call__

    def leaky(self, *values):
        out = real(self, *values)
        return out[:-1] + [values[-1]] if self.count == 2 else out
    monkeypatch.setattr(gen.Cuts, "__call__", leaky)
    rng = random.Random(4)
    pairs = list(zip(_log_uniform(rng, 32, 200), _log_uniform(rng, 17, 200)))
    got = _simulate(REGISTRY["mbm"], 32, 17, pairs, pipelined=True)
    assert sum(g != REGISTRY["mbm"].product(a, b) for g, (a, b) in zip(got, pairs)) > 20


def test_a_planted_wrong_mbm_constant_is_caught_by_the_generator_check():
    got = _simulate(PLANTED, 6, 6, SIX)
    assert sum(g != MBM3.product(a, b) for g, (a, b) in zip(got, SIX)) > 100


def _mul_cells(dut) -> list[tuple[int, int]]:
    """The (A, B) operand widths of every ``$mul`` cell in the circuit's RTLIL."""
    text = rtlil.convert(dut, name="mul", ports=[dut.a, dut.b, dut.p])
    cells = text.split("cell $mul ")[1:]
    return [tuple(int(c.split(f"parameter \\{k}_WIDTH ")[1].split()[0]) for k in "AB") for c in cells]


def test_only_the_exact_multiplier_builds_a_multiply_cell():
    """No ``$mul`` cell in an approximate circuit: synthesis has nothing to
    put in a DSP48E2. The exact one keeps one, as wide as one DSP48E2's
    ports (27 x 18 signed: the weight's top 27 bits, a 17-bit lane), the
    weight's 5 low bits multiplied in LUTs; a product that one DSP takes
    whole stays one ``$mul``."""
    for spec in REGISTRY.values():
        cells = _mul_cells(gen.ApproxMultiplier(spec, 32, 17))
        assert cells == ([(27, 17)] if spec.kind == "exact" else []), spec.name
    assert _mul_cells(gen.ApproxMultiplier("exact", 16, 16)) == [(16, 16)]
    assert _mul_cells(gen.ApproxMultiplier("exact", 32, 17, lut_bits=0)) == [(32, 17)]   # pe.lut_product_bits = 0
    assert len(_mul_cells(gen.ApproxMultiplier("exact", 48, 17))) == 1     # 21 low bits: too wide for LUTs


def test_a_planted_lut_part_of_the_exact_product_is_caught(monkeypatch):
    """Planted: the LUT part of the weight's low bits drops its top row."""
    real = gen.rows_product
    monkeypatch.setattr(gen, "rows_product", lambda m, a, b, name: real(m, a[:-1], b, name))
    rng = random.Random(6)
    pairs = list(zip(_log_uniform(rng, 32, 200), _log_uniform(rng, 17, 200)))
    got = _simulate(REGISTRY["exact"], 32, 17, pairs, pipelined=True)
    assert sum(g != a * b for g, (a, b) in zip(got, pairs)) > 20


def test_figures_run_on_a_small_sample():
    """The error and matmul-speed figures on a small sample (the whole-step,
    digits and Yosys figures are make bench's: minutes, not a test's)."""
    from fixar.figures.multipliers import error_figures, speed_figures
    figs = {**error_figures(samples=2000), **speed_figures(shape=(20, 40, 8), repeats=1)}
    assert figs["mult_exact_mean_rel_err"] == 0 and figs["mult_exact_bias"] == 0
    assert figs["mult_mitchell_bias"] < -0.03 and abs(figs["mult_drum6_bias"]) < 0.01
    assert all(f"approx_golden_matmul_vs_exact_ratio_{n}" in figs for n in MULTIPLIERS)


def test_u50_capacity_counts_pes_by_the_scarcer_resource_and_builds_the_largest_array():
    """The figure's arithmetic on made-up PE costs: a DSP-free PE is bounded by
    LUTs or flip-flops, whichever is scarcer; the IPS is the cycle model's for
    the largest R x R array (1 or 2 cores, R a power of two) within that many
    PEs, with the multiplier's own latency."""
    from fixar.compiler.program import projected
    from fixar.figures.multipliers import _shape, u50_capacity
    pe = {f"pe_{m}_{r}": 0 for m in MULTIPLIERS for r in ("lut", "dsp48e2")}
    pe.update({f"pe_{m}_ff": 600 for m in MULTIPLIERS})
    pe.update(pe_exact_lut=500, pe_exact_dsp48e2=4, pe_drum6_ff=5_000)
    for m in MULTIPLIERS[1:]:
        pe[f"pe_{m}_lut"] = 2_000
    pe["pe_trunc16_lut"] = 4_000
    kernel = {"kernel_lut": 300_000, "kernel_ff": 400_000, "kernel_dsp48e2": 3_000}
    figs = u50_capacity(DEFAULT, pe, kernel)
    rest_lut, rest_dsp = 300_000 - 512 * 500, 3_000 - 512 * 4
    assert figs["approx_pes_on_u50_exact"] == min((872_000 * 0.9 - rest_lut) // 500, (5_952 * 0.9 - rest_dsp) // 4)
    assert figs["approx_pes_on_u50_mbm"] == (872_000 * 0.9 - rest_lut) // 2_000 == 370
    assert figs["approx_pes_on_u50_drum6"] == (1_743_000 * 0.9 - (400_000 - 512 * 600)) // 5_000 == 295
    assert figs["approx_pes_on_u50_trunc16"] == 185
    mbm = projected(_shape(DEFAULT.with_multiplier("mbm"), 1, 16), 17, 6, (400, 300), 512)["accel_ips"]
    assert figs["approx_ips_b512_mbm"] == mbm < projected(_shape(DEFAULT, 1, 16), 17, 6, (400, 300), 512)["accel_ips"]
    assert figs["approx_ips_b512_trunc16"] == projected(_shape(DEFAULT.with_multiplier("trunc16"), 2, 8), 17, 6,
                                                        (400, 300), 512)["accel_ips"]
    assert figs["approx_pes_on_u50_exact"] == 1_101       # DSP-bound: one 32 x 32 core fits
    assert figs["approx_ips_b512_exact"] == projected(_shape(DEFAULT, 1, 32), 17, 6, (400, 300), 512)["accel_ips"]
