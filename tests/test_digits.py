"""The digits check (fixar.golden.digits): FP32 learns, BFP with 8-bit
mantissas stays within a few points of it, every run is reproducible."""
from __future__ import annotations

import numpy as np
import pytest

from fixar.config import DEFAULT
from fixar.config.bfp import BfpFormat
from fixar.golden.digits import FixedMlp, Setup, init_params, load_digits_split, make_model, softmax_error, train
from fixar.golden.fixed import dequantize, quantize

pytest.importorskip("sklearn", reason="the digits check needs scikit-learn (its bundled data set)")


@pytest.fixture(scope="module")
def data():
    return load_digits_split()


@pytest.fixture(scope="module")
def fp32_acc(data):
    return train("fp32", data)


def test_split_is_fixed_and_exact_in_fixed_point(data):
    assert data.x_train.shape == (1348, 64) and data.x_test.shape == (449, 64)
    assert np.array_equal(load_digits_split().y_test, data.y_test)
    fmt = DEFAULT.pe.act32
    assert np.array_equal(dequantize(quantize(data.x_train, fmt), fmt), data.x_train)   # k / 16 in Q12.20


def test_softmax_error_is_the_mean_cross_entropy_gradient():
    z = np.random.default_rng(0).normal(size=(10, 4))
    y = np.array([3, 0, 9, 3])
    d = softmax_error(z, y)
    assert np.allclose(d.sum(axis=0), 0) and np.all(d[y, np.arange(4)] < 0)


def test_fp32_learns(fp32_acc):
    assert fp32_acc > 0.90


def test_fxp32_and_bfp8_stay_close_to_fp32(data, fp32_acc):
    assert train("fxp32", data) >= fp32_acc - 0.03
    assert train("bfp", data, bfp=BfpFormat(8)) >= fp32_acc - 0.03


def test_bfp_runs_are_reproducible_and_convert(data):
    setup = Setup(epochs=1)
    x, y = data.x_train[:64], data.y_train[:64]

    def weights(precision, fmt=None):
        model = make_model(precision, init_params((64, setup.hidden, 10), 0), setup, bfp=fmt)
        for i in range(0, 64, setup.batch):
            model.step(x[i:i + setup.batch], y[i:i + setup.batch])
        return model.W

    a, b = weights("bfp", BfpFormat(2)), weights("bfp", BfpFormat(2))
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not all(np.array_equal(u, v) for u, v in zip(a, weights("fxp32")))
    with pytest.raises(ValueError, match="precision"):
        make_model("fp16", init_params((64, 32, 10), 0), setup)
    assert isinstance(make_model("bfp", init_params((64, 32, 10), 0), setup), FixedMlp)
