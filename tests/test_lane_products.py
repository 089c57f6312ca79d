"""Every product of a BFP training step runs on the lane array: the
operands BfpLayers records (forward, transposed and weight-gradient
products of both networks, at every mantissa width) lay out for the lane
array, and its golden sums (fixar.golden.lane_array) are the products the
training step computes, exactly and unwrapped, times 2^frac_extra."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import fixar.golden.bfp_train as bfp_train
import fixar.golden.ddpg as ddpg
from fixar.compiler.lane_array import lay_out
from fixar.config import load
from fixar.config.bfp import lane_array_shape
from fixar.figures.lane_products import engine_product_cycles, product_cycles, step_products
from fixar.golden.lane_array import layer_sums

CFG = load("default")
OBS, ACT, HIDDEN, BATCH = 3, 1, (24, 20), 12


def _exact(a, b) -> np.ndarray:
    return np.asarray(a, dtype=np.int64).astype(object) @ np.asarray(b, dtype=np.int64).astype(object)


def _record(steps: int = 4):
    """Sweep steps (2, 4, 6, 8 bits) recorded twice over: as LaneProducts, and
    as the exact products the training step's own functions computed."""
    seen = []
    real = bfp_train.linear, ddpg.transposed, ddpg.weight_grad
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bfp_train, "linear", lambda cfg, W, X, *rest: seen.append(("forward", _exact(W, X)))
                   or real[0](cfg, W, X, *rest))
        mp.setattr(ddpg, "transposed", lambda cfg, W, D, *rest: seen.append(("transposed", _exact(W.T, D)))
                   or real[1](cfg, W, D, *rest))
        mp.setattr(ddpg, "weight_grad", lambda cfg, D, X, *rest: seen.append(("gradient", _exact(D, X.T)))
                   or real[2](cfg, D, X, *rest))
        products = step_products(CFG, OBS, ACT, HIDDEN, BATCH, steps=steps, sweep=True)
    return products, seen


@pytest.fixture(scope="module")
def recorded():
    return _record()


def _unpadded(sums: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The critic's first layer groups s padded with zeros to whole groups:
    drop the padded features (they sit right after s) where a dimension is longer."""
    pad = -OBS % CFG.bfp.group
    keep = lambda n, want: np.arange(n) if n == want else np.r_[0:OBS, OBS + pad:n]  # noqa: E731
    return sums[np.ix_(keep(sums.shape[0], shape[0]), keep(sums.shape[1], shape[1]))]


def _differences(products, seen) -> list[str]:
    """What differs between the lane array's golden sums of the records and
    the training step's exact products (times 2^frac_extra, unwrapped)."""
    f = lane_array_shape(CFG).lanes.fmac
    if [p.kind for p in products] != [kind for kind, _ in seen]:
        return ["the products came in another order"]
    bad = []
    for n, (p, (_, exact)) in enumerate(zip(products, seen)):
        lay_out(CFG, p.w, p.a)          # the exponent fields and the memories hold it (else ValueError)
        sums = _unpadded(np.array(layer_sums(CFG, p.w, p.a), dtype=object), exact.shape)
        want = exact * (1 << f.frac_extra)
        if max(abs(int(v)) for v in want.flat).bit_length() >= f.acc_bits:
            bad.append(f"product {n} ({p.kind}, layer {p.layer}) wraps the {f.acc_bits}-bit sums")
        elif sums.shape != want.shape or not (sums == want).all():
            bad.append(f"product {n} ({p.kind}, layer {p.layer}) differs")
    return bad


def test_every_product_of_a_step_is_the_lane_arrays(recorded):
    assert _differences(*recorded) == []


def test_records_of_other_roundings_are_caught(monkeypatch):
    """Planted: the record converts with the next seed, not the training's:
    the check must see products that differ."""
    real = bfp_train.to_bfp
    monkeypatch.setattr(bfp_train, "to_bfp", lambda q, frac, fmt, seed, axis: real(q, frac, fmt, seed + 1, axis))
    bad = _differences(*_record(steps=1))
    assert bad and all("differs" in b for b in bad)


def test_the_record_covers_every_kind_and_width(recorded):
    products, _ = recorded
    got = Counter((p.kind, p.w.fmt.mantissa_bits, p.a.fmt.mantissa_bits) for p in products)
    kinds = ("forward", "transposed", "gradient")
    assert {(k, m, m) for k in kinds for m in CFG.bfp.widths} == set(got)
    per_width = Counter(p.w.fmt.mantissa_bits for p in products)      # one step at each width
    assert len(set(per_width.values())) == 1, per_width


def test_lane_cycles_fall_with_the_width():
    """Cycles of a step's products on the lane array at each fixed width: every
    narrower width is faster, and at 8 bits the lane array is within 10 % of
    the FXP32 engine with as many multiplier rows (32 columns of 16)."""
    cycles = {m: sum(product_cycles(CFG, p) for p in step_products(CFG, OBS, ACT, (48, 40), 64, fixed=m))
              for m in CFG.bfp.widths}
    assert all(cycles[a] > cycles[b] for a, b in zip(CFG.bfp.widths[1:], CFG.bfp.widths))
    engine = engine_product_cycles(CFG, OBS, ACT, (48, 40), 64)
    assert 0.5 < engine / cycles[8] < 1.5
