"""QAT with 16-bit backward errors (issue 19 item 3). Config qat16e
(array.qat_errors = "fxp16"): each hidden layer's masked error has a
power-of-two quantizer of its own, one set per backward pass, its range
tracked in phase 1 and frozen at the switch; after it every error a
transposed product or a gradient reads is on its quantizer's grid. Config
qat16s ("fxp16_step"): each such error is signed 16-bit codes times the
power of two its own largest magnitude needs, that step; qat16d
("fxp16_delayed"): the same with the magnitude of one step earlier. Golden
backend only so far."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import fixar.golden.ddpg as golden_ddpg
from fixar.compiler.program import ProgramError, compile_ddpg, encode
from fixar.config import ConfigError, load
from fixar.golden.ddpg import FixedDDPG
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper

POW2, Q16E, Q16S, Q16D = load("qat_pow2"), load("qat16e"), load("qat16s"), load("qat16d")
BITS = Q16E.pe.act16.bits
OBS, ACT, HYPER = 5, 2, Hyper(batch=16, hidden=(24, 16))


def test_the_field_is_checked_and_left_out_of_older_digests():
    assert "qat_errors" not in load("default").to_dict()["array"]
    assert "qat_errors" not in POW2.to_dict()["array"]
    assert Q16E.to_dict()["array"]["qat_errors"] == "fxp16" and Q16E.digest != POW2.digest
    with pytest.raises(ConfigError, match="array.qat_errors"):
        POW2.variant(array=dataclasses.replace(POW2.array, qat_errors="fxp8"))
    affine = load("default").array
    with pytest.raises(ConfigError, match='qat_errors = "fxp16" needs array.quantizer_scale = "pow2"'):
        dataclasses.replace(affine, qat_errors="fxp16")


def _batches(n: int, seed: int = 3):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        # states 8x and rewards 1000x unit scale: the errors span more than 2^16 act32 steps
        yield (rng.normal(0, 8, (HYPER.batch, OBS)), rng.uniform(-1, 1, (HYPER.batch, ACT)),
               rng.normal(0, 1000, HYPER.batch), rng.normal(0, 8, (HYPER.batch, OBS)), np.zeros(HYPER.batch))


def _run(cfg, phase1: int, phase2: int) -> GoldenBackend:
    backend = GoldenBackend(OBS, ACT, HYPER, 7, cfg)
    backend.set_precision_phase("qat")
    batches = list(_batches(phase1 + phase2))
    for b in batches[:phase1]:
        backend.train(*b)
    if phase2:
        backend.switch_to_fxp16()
        for b in batches[phase1:]:
            backend.train(*b)
    return backend


def _params(backend: GoldenBackend) -> list[np.ndarray]:
    return [p.copy() for p in backend.state_dict().values() if isinstance(p, np.ndarray)]


def test_phase_1_tracks_the_errors_and_computes_qat_pow2s_bits():
    pow2, q16e = _run(POW2, 4, 0), _run(Q16E, 4, 0)
    assert all(np.array_equal(a, b) for a, b in zip(_params(pow2)[:-1], _params(q16e)[:-1]))
    for key in FixedDDPG.ERROR_QUANTIZERS:
        q = q16e.ddpg.qat[key]
        assert q.seen == [False, True, True], key          # the hidden layers' errors, not the input's
        assert all(q.hi[i] > 0 > q.lo[i] for i in (1, 2)), key
    assert set(pow2.ddpg.qat) == {"actor", "critic"}


def _recording(monkeypatch) -> list[tuple[str, np.ndarray]]:
    """Every error the backward pass hands to a transposed product or a weight gradient."""
    seen = []
    real_t, real_g = golden_ddpg.transposed, golden_ddpg.weight_grad

    def transposed(cfg, W, D, **kw):
        seen.append((W.shape, np.array(D)))
        return real_t(cfg, W, D, **kw)

    def weight_grad(cfg, D, X, ops=None):
        seen.append(("grad", np.array(D)))
        return real_g(cfg, D, X, ops)

    monkeypatch.setattr(golden_ddpg, "transposed", transposed)
    monkeypatch.setattr(golden_ddpg, "weight_grad", weight_grad)
    return seen


@pytest.mark.parametrize("numba", [True, False], ids=["numba", "numpy"])
def test_after_the_switch_every_hidden_error_is_16_bit(monkeypatch, numba):
    monkeypatch.setenv("FIXAR_NO_NUMBA", "0" if numba else "1")     # both routes of the quantizer
    backend = _run(Q16E, 4, 0)
    backend.switch_to_fxp16()
    grids = {}      # rows of an error -> the (e, z) of the quantizers of that height
    for key, net in FixedDDPG.ERROR_QUANTIZERS.items():
        q, W = backend.ddpg.qat[key], getattr(backend.ddpg, net).W
        for i in (1, 2):
            grids.setdefault(W[i].shape[1], set()).add((q.delta[i].bit_length() - 1 - BITS, q.zero[i]))
    assert any(e > 0 for g in grids.values() for e, _ in g), grids        # else every code is on every grid
    seen = _recording(monkeypatch)
    backend.train(*next(_batches(1, seed=9)))
    hidden = [D for _, D in seen if D.shape[0] in grids]
    # critic (TD): a product and two gradients; critic (-Q): two products; actor: a product and two gradients
    assert len(hidden) == 3 + 2 + 3
    for D in hidden:
        assert any(np.all(D % (1 << e) == 0) and np.all((D >> e) + z >= 0) and np.all((D >> e) + z < 1 << BITS)
                   for e, z in grids[D.shape[0]]), D.shape
    pow2 = _run(POW2, 4, 1)
    q16e = _run(Q16E, 4, 1)
    assert not all(np.array_equal(a, b) for a, b in zip(_params(pow2), _params(q16e)))


def test_a_checkpoint_after_the_switch_resumes_exactly():
    a = _run(Q16E, 3, 2)
    b = GoldenBackend(OBS, ACT, HYPER, 7, Q16E)
    b.load_state_dict(a.state_dict())
    assert b.ddpg.qat["critic.errors"].delta == a.ddpg.qat["critic.errors"].delta
    more = list(_batches(2, seed=11))
    for batch in more:
        a.train(*batch)
        b.train(*batch)
    assert all(np.array_equal(x, y) for x, y in zip(_params(a), _params(b)))


def test_the_engine_refuses_it_in_one_line():
    with pytest.raises(ProgramError, match="16-bit backward errors .* golden backend"):
        compile_ddpg(Q16E, OBS, ACT, HYPER.hidden, HYPER.batch, quantized=True)
    compile_ddpg(Q16E, OBS, ACT, HYPER.hidden, HYPER.batch)      # FXP32 compiles as qat_pow2's


# ------------------------------------------ qat16s / qat16d: each error's own scale, this step's or the last
def test_the_step_scale_keeps_each_errors_top_16_bits():
    q = golden_ddpg.StepScaledErrors(Q16S, 3)
    half = 1 << (BITS - 1)
    small = np.array([[half - 1, 1 - half, 0, 5]])
    assert q.shift(half - 1) == 0 and np.array_equal(q.fake_quantize(1, small), small)    # fits: exact
    big = np.array([[(half << 4) - 1, 1 - (half << 4), 23, -24, 8, -8, 7]])
    assert q.shift((half << 4) - 1) == 4 and q.shift(half) == 1     # by magnitude: -2^15 takes a step of 2
    # half up on the 2^4 grid, the positive top clipped to 2^15 - 1 steps
    assert q.fake_quantize(1, big).tolist() == [[(half - 1) << 4, -(half << 4), 16, -16, 16, 0, 0]]
    assert q.fake_quantize(1, np.zeros((2, 3), dtype=np.int64)).tolist() == [[0] * 3] * 2
    floor = golden_ddpg.StepScaledErrors(Q16S.variant(array=dataclasses.replace(Q16S.array,
                                                                             quantizer_rounding="floor")), 3)
    assert floor.fake_quantize(1, big).tolist() == [[(half - 1) << 4, -(half << 4), 16, -32, 0, -16, 0]]


def test_an_error_saturated_at_minus_2_31_takes_the_largest_packed_shift():
    """-2^31 has 32 magnitude bits, so s would be 17; Delta = 2^33 fits neither the
    quantizer's table nor a packed product's shift: s stops at 16, which holds -2^31."""
    q = golden_ddpg.StepScaledErrors(Q16S, 2)
    lo, hi = Q16S.pe.act32.min_int, Q16S.pe.act32.max_int
    assert q.shift(-lo) == 16 and q.shift(hi) == 16 and q.shift(hi >> 1) == 15
    assert q.fake_quantize(1, np.array([lo, hi, 3 << 14])).tolist() == [lo, hi - ((1 << 16) - 1), 1 << 16]


@pytest.mark.parametrize("rounding", ["half_up", "floor"])
def test_the_step_scale_is_the_activations_quantizer_with_zero_point_2_15(rounding):
    """What lets the engine use its quantizer for the errors (docs/program.md,
    "Not built yet"): fake_quantize is quantize16 then dequantize16 with
    Delta = 2^(s + 16) and z = 2^15; here it must equal the signed 16-bit code
    times 2^s of the docstring, written out with Python ints, for every s."""
    cfg = Q16S.variant(array=dataclasses.replace(Q16S.array, quantizer_rounding=rounding))
    q, half, rng = golden_ddpg.StepScaledErrors(cfg, 2), 1 << (BITS - 1), np.random.default_rng(5)
    for top in (half - 1, half, 3 << 20, Q16S.pe.act32.max_int):       # errors are act32 codes
        E = rng.integers(-top, top + 1, 500)
        E[:2] = top, -top
        s = q.shift(int(np.abs(E).max()))
        add = (1 << s) >> 1 if rounding == "half_up" else 0
        want = [min(max((int(e) + add) >> s, -half), half - 1) << s for e in E]
        assert q.fake_quantize(1, E).tolist() == want


def test_delayed_scaling_takes_the_last_steps_magnitude_and_clips_growth():
    q = golden_ddpg.StepScaledErrors(Q16D, 3)
    half = 1 << (BITS - 1)
    q.track(2, np.array([[3, -(half << 2) + 1]]))          # phase 1: the last step's max |E| -> s = 2
    q.freeze()
    grown = np.array([[half << 3, -(half << 3), 6, -5]])   # 2^3 larger now: clips at 2^15 steps of 4
    assert q.fake_quantize(2, grown).tolist() == [[(half - 1) << 2, -(half << 2), 8, -4]]
    assert q.amax[2] == half << 3 and q.amax[1] == 0        # this step's max |E|, for the next
    assert q.fake_quantize(2, grown).tolist() == [[half << 3, -(half << 3), 0, 0]]     # now s = 4: fits
    assert q.fake_quantize(1, np.array([[-7, 9]])).tolist() == [[-7, 9]]    # never seen: step 1, exact


@pytest.mark.parametrize("cfg", [Q16S, Q16D], ids=["qat16s", "qat16d"])
def test_step_scaled_phase_1_is_qat_pow2s(cfg):
    pow2, run = _run(POW2, 4, 0), _run(cfg, 4, 0)
    assert all(np.array_equal(a, b) for a, b in zip(_params(pow2)[:-1], _params(run)[:-1]))
    for key in FixedDDPG.ERROR_QUANTIZERS:
        q = run.ddpg.qat[key]
        assert not q.frozen and q.amax[0] == 0 and q.amax[1] > 0 and q.amax[2] > 0, key


def test_after_the_switch_every_hidden_error_has_its_own_16_bit_grid(monkeypatch):
    backend = _run(Q16S, 4, 0)
    backend.switch_to_fxp16()
    rows = {getattr(backend.ddpg, net).W[i].shape[1] for net in ("actor", "critic") for i in (1, 2)}
    seen = _recording(monkeypatch)
    backend.train(*next(_batches(1, seed=9)))
    hidden = [D for _, D in seen if D.shape[0] in rows]
    assert len(hidden) == 3 + 2 + 3
    steps = []
    for D in hidden:
        top = int(np.abs(D).max())
        s = max(0, top.bit_length() - (BITS - 1))
        steps.append(s)
        # on the 2^s grid, and 2^s is the finest step at which the largest error fits 16 signed bits
        assert np.all(D % (1 << s) == 0) and np.all(np.abs(D >> s) <= 1 << (BITS - 1)), D.shape
    assert max(steps) > 0, steps                      # else every error was exact and nothing was tested
    pow2 = _run(POW2, 4, 1)
    q16s = _run(Q16S, 4, 1)
    assert not all(np.array_equal(a, b) for a, b in zip(_params(pow2), _params(q16s)))


@pytest.mark.parametrize("cfg", [Q16S, Q16D], ids=["qat16s", "qat16d"])
def test_a_step_scaled_checkpoint_after_the_switch_resumes_exactly(cfg):
    a = _run(cfg, 3, 2)
    b = GoldenBackend(OBS, ACT, HYPER, 7, cfg)
    b.load_state_dict(a.state_dict())
    assert b.ddpg.qat["critic.errors"].frozen and b.ddpg.qat["critic.errors"].amax == a.ddpg.qat["critic.errors"].amax
    for batch in _batches(2, seed=11):
        a.train(*batch)
        b.train(*batch)
    assert all(np.array_equal(x, y) for x, y in zip(_params(a), _params(b)))


def test_the_compiler_refuses_errors_it_cannot_scale_and_qat16d_off_the_packed_route():
    """qat16s needs each error whole before it is quantized (no engine does
    that); qat16d compiles only packed (its errors are codes), and its packed
    program encodes."""
    with pytest.raises(ProgramError, match="16-bit backward errors .* golden backend"):
        compile_ddpg(Q16S, OBS, ACT, HYPER.hidden, HYPER.batch, quantized=True)
    with pytest.raises(ProgramError, match="16-bit backward errors run in packed products"):
        compile_ddpg(Q16D, OBS, ACT, HYPER.hidden, HYPER.batch, quantized=True)
    tops = {(n, i): 1 << 20 for n in ("actor", "critic") for i in range(1, len(HYPER.hidden) + 1)}
    p = compile_ddpg(Q16D, OBS, ACT, HYPER.hidden, HYPER.batch, quantized=True, tops=tops, tanh_limit=1 << 16,
                     packed=True, quantizers=[(1 << 20, 1 << 15)] * Q16D.array.quantizers)
    words, act_pc = encode(Q16D, p, HYPER.batch)
    assert len(words) > act_pc > 0
