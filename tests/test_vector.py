"""The golden vector unit against slow Python-int references, element by element."""
from __future__ import annotations

import numpy as np
import pytest

import reference as ref
from fixar.config import VecOp, load
from fixar.golden.vector import noise, noise_add, vector_op

CFG = load("default")
FMT = CFG.pe.act32
ONE = 1 << FMT.frac


def _operands(rng, n):
    mag = np.minimum(np.floor(2.0 ** rng.uniform(0, FMT.bits - 1, n)), FMT.max_int).astype(np.int64)
    x = np.where(rng.random(n) < 0.5, -mag, mag)
    special = [0, 1, -1, ONE, -ONE, ONE + 1, -ONE - 1, FMT.max_int, FMT.min_int]
    return np.where(rng.random(n) < 0.2, rng.choice(special, n), x)


@pytest.mark.parametrize("op", [op for op in VecOp if op != VecOp.NOISE], ids=lambda op: op.name)
def test_vector_op_matches_reference(op):
    rng = np.random.default_rng(int(op))
    n = 2000
    a, b = _operands(rng, n), _operands(rng, n)
    flag = rng.random(n) < 0.5
    # b's own value: the edge; just below one: where DTANH's limits lie
    limits = (None, ONE, int(b[b > 0][0]), 2 ** (FMT.bits - 1), 0, ONE - 1234)
    for c, limit in zip((round(0.99 * 2 ** 30), round(0.005 * 2 ** 30), 2 ** 31 - 1, 1, 12345, 7), limits):
        got = vector_op(CFG, op, a, b, flag, c, limit)
        want = [ref.vector_reference(CFG, op.name, int(x), int(y), bool(f), c, limit) for x, y, f in zip(a, b, flag)]
        assert got.tolist() == want, f"{op.name} with c = {c}, limit = {limit}"


def test_relu_mask_stops_the_error_at_the_quantizer_top():
    b = np.array([-5, 0, 1, 99, 100, 101, FMT.max_int])
    a = np.arange(1, 8) * 10
    assert vector_op(CFG, VecOp.RELU_MASK, a, b).tolist() == [0, 0, 30, 40, 50, 60, 70]
    assert vector_op(CFG, VecOp.RELU_MASK, a, b, limit=100).tolist() == [0, 0, 30, 40, 0, 0, 0]
    with pytest.raises(ValueError, match="limit"):
        vector_op(CFG, VecOp.RELU_MASK, a, b, limit=2 ** (FMT.bits - 1) + 1)


def test_dtanh_is_zero_from_its_limit_on():
    """DTANH's limit marks where b is a saturated tanh seen on a quantizer's
    grid: from |b| = limit on, the derivative is 0 as at +-one itself."""
    b = np.array([ONE - 40, ONE - 33, ONE - 32, -(ONE - 32), -(ONE - 31), ONE, -ONE, 0])
    a = np.full(len(b), ONE)
    free = vector_op(CFG, VecOp.DTANH, a, b)
    assert np.all(free[:5] > 0) and free[5] == free[6] == 0 and free[7] == ONE
    got = vector_op(CFG, VecOp.DTANH, a, b, limit=ONE - 32)
    assert got.tolist() == [free[0], free[1], 0, 0, 0, 0, 0, ONE]


def test_noise_matches_reference_and_has_its_moments():
    c = round(0.2 * 3 ** 0.5 * 2 ** 30)
    got, state = noise(CFG, 12345, 500, c)
    want, want_state = ref.noise_reference(CFG, 12345, 500, c)
    assert got.tolist() == want and state == want_state
    big, _ = noise(CFG, 7, 20000, c)
    x = big * 2.0 ** -FMT.frac
    assert abs(x.mean()) < 0.01 and abs(x.std() - 0.2) < 0.01, (x.mean(), x.std())


def test_noise_add_clips_to_the_action_bounds():
    a = np.array([ONE, -ONE, ONE - 5, 0])
    y, _ = noise_add(CFG, a, 99, 2 ** 31 - 1)   # a large noise scale
    assert np.all(np.abs(y) <= ONE)


def test_noise_is_not_elementwise():
    with pytest.raises(ValueError, match="noise_add"):
        vector_op(CFG, VecOp.NOISE, [0])
