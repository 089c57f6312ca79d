"""QAT's power-of-two quantizer step (array.quantizer_scale = "pow2"): every
16-bit input is an exact act32 code (q - z) 2^e, so the layer's FXP32 product
on it equals the packed FXP16 product of the offset codes q - 2^15 with a
zero-point correction, shifted by e: the identity the packed phase 2 rests on
(docs/training.md, "The power-of-two quantizer step")."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from tests.reference import round_shift

from fixar.config import ActFunc, ConfigError, load
from fixar.golden.qat import LayerQuantizers, quantizer

DEFAULT = load("default")
POW2 = load("qat_pow2")
BITS = DEFAULT.pe.act16.bits


def _with_scale(cfg, scale):
    return cfg.variant(array=dataclasses.replace(cfg.array, quantizer_scale=scale))


def _ranges(rng, n=300):
    """(lo, hi) pairs holding zero: one-sided, two-sided, tiny and near the format's ends."""
    top = DEFAULT.pe.act32.max_int
    out = [(0, 0), (0, 1), (-1, 0), (0, (1 << 16) - 1), (0, 1 << 16), (-(1 << 15), 1 << 15), (-top - 1, top), (0, top)]
    for _ in range(n):
        mag = 1 << int(rng.integers(1, 31))
        lo = -int(rng.integers(0, mag)) if rng.random() < 0.7 else 0
        out.append((lo, int(rng.integers(0, mag))))
    return out


def test_the_scale_is_a_checked_field_left_out_of_the_default_digest():
    assert dataclasses.replace(DEFAULT.array).quantizer_scale == "affine"
    assert "quantizer_scale" not in DEFAULT.to_dict()["array"]
    assert POW2.to_dict()["array"]["quantizer_scale"] == "pow2" and POW2.digest != DEFAULT.digest
    with pytest.raises(ConfigError, match="array.quantizer_scale"):
        _with_scale(DEFAULT, "log")


def test_pow2_delta_is_the_span_rounded_up_to_a_power_of_two():
    rng = np.random.default_rng(0)
    for lo, hi in _ranges(rng):
        span = max(hi - lo, 1)
        d, z = quantizer(POW2, lo, hi)
        assert d & (d - 1) == 0 and d >= 1 << BITS, (lo, hi, d)
        assert d >= span and (d == 1 << BITS or d < 2 * span), (lo, hi, d)
        assert z == (-lo << BITS) // d
        assert quantizer(DEFAULT, lo, hi) == (span, (-lo << BITS) // span)


def _quantizers(cfg, lo, hi):
    q = LayerQuantizers(cfg, 1)
    q.track(0, np.array([lo, hi]))
    q.freeze()
    return q


def test_every_pow2_input_is_exactly_q_minus_z_shifted():
    rng = np.random.default_rng(1)
    for lo, hi in _ranges(rng, 100):
        q = _quantizers(POW2, lo, hi)
        e = q.delta[0].bit_length() - 1 - BITS
        X = np.concatenate([rng.integers(lo, hi + 1, 200), [lo, hi, 0]])
        codes = q.quantize(0, X)
        assert np.array_equal(q.fake_quantize(0, X), (codes - q.zero[0]) << e)
        # within half a step of the input where no code clips (z is floored, so
        # lo itself can fall one step below code 0, as with the affine step)
        err = np.abs(q.fake_quantize(0, X) - X)
        inside = (codes > 0) & (codes < (1 << BITS) - 1)
        assert (err[inside] <= max(1 << e >> 1, 0)).all()


def _packed_reference(cfg, W, codes, zero, e, bias) -> list[list[int]]:
    """The packed FXP16 route on Python integers: lanes of q - 2^15 (signed
    16 bits), the zero point's correction (2^15 - z) times each weight row's
    sum, the shift by e to the FXP32 product's scale, the bias, one rounding."""
    pe, half = cfg.pe, 1 << (BITS - 1)
    out = []
    for j, row in enumerate(W.tolist()):
        rowsum = sum(row)
        out.append([])
        for b in range(codes.shape[1]):
            lanes = [int(c) - half for c in codes[:, b]]
            assert all(-half <= v < half for v in lanes)          # each fits a signed 16-bit lane
            acc = sum(w * v for w, v in zip(row, lanes)) + (half - zero) * rowsum
            total = (acc << e) + (int(bias[j]) << pe.shift32)
            out[-1].append(round_shift(total, pe.shift32, pe.out))
    return out


@pytest.mark.parametrize("lo_hi", [(0, 3 << 20), (-(5 << 18), 7 << 19), (-(1 << 12), 1 << 12), (-(3 << 25), 0)])
def test_a_pow2_layer_equals_the_packed_product_with_the_zero_point_correction(lo_hi):
    rng = np.random.default_rng(sum(lo_hi) & 0xFFFF)
    lo, hi = lo_hi
    q = _quantizers(POW2, lo, hi)
    e = q.delta[0].bit_length() - 1 - BITS
    W = rng.integers(-(1 << 22), 1 << 22, (6, 37))
    X = rng.integers(lo, hi + 1, (37, 5))
    bias = rng.integers(-(1 << 20), 1 << 20, 6)
    got, _ = q.layer(0, W, bias, X, ActFunc.IDENTITY)
    assert got.tolist() == _packed_reference(POW2, W, q.quantize(0, X), q.zero[0], e, bias)


def test_the_affine_step_does_not_have_the_packed_form():
    """The same reference fails with FIXAR's affine step: its inputs are
    rounded into act32, so no shift of q - z reproduces them."""
    rng = np.random.default_rng(2)
    lo, hi = -(5 << 18), 7 << 19
    q = _quantizers(DEFAULT, lo, hi)
    e = max(q.delta[0].bit_length() - 1 - BITS, 0)
    W = rng.integers(-(1 << 22), 1 << 22, (6, 37))
    X = rng.integers(lo, hi + 1, (37, 5))
    got, _ = q.layer(0, W, np.zeros(6, dtype=np.int64), X, ActFunc.IDENTITY)
    assert got.tolist() != _packed_reference(DEFAULT, W, q.quantize(0, X), q.zero[0], e, np.zeros(6))
