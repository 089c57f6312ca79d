"""Figures of block floating point (issue 23, docs/bfp.md): the conversion
error and saturation bias by mantissa width, and the digits check, a
64-32-10 MLP trained in FP32, FXP32 and BFP (fixar.golden.digits).

Not in `make bench` yet (summary.py's parts are wired by its owner);
``figures()`` returns the whole group (18 trainings: about 5 minutes on 2 busy cores).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from fixar.config.bfp import MANTISSA_WIDTHS, BfpFormat
from fixar.golden.bfp import conversion_rel_err, relu_bias
from fixar.golden.digits import Setup, load_digits_split, train

HEADLINE_WIDTH = 8      # digits_acc_bfp: the widest mantissa, the one FAST ends training at
SEEDS = (0, 1, 2)       # one test set of 449 images: a single run moves in steps of 0.22 %


def _runs(setup: Setup, widths: tuple[int, ...]) -> dict:
    """Test accuracy of every precision for one seed (split, init, batch order)."""
    data = load_digits_split(setup.seed)
    out = {"digits_acc_fp32": train("fp32", data, setup), "digits_acc_fxp32": train("fxp32", data, setup)}
    for m in widths:
        out[f"digits_acc_bfp_m{m}"] = train("bfp", data, setup, bfp=BfpFormat(m))
    if HEADLINE_WIDTH not in widths:
        out[f"digits_acc_bfp_m{HEADLINE_WIDTH}"] = train("bfp", data, setup, bfp=BfpFormat(HEADLINE_WIDTH))
    out["digits_acc_bfp"] = out[f"digits_acc_bfp_m{HEADLINE_WIDTH}"]
    return out


def digits_accuracy(setup: Setup | None = None, widths: tuple[int, ...] = MANTISSA_WIDTHS,
                    seeds: tuple[int, ...] = SEEDS) -> dict:
    """digits_acc_fp32 / _fxp32 / _bfp (8-bit mantissas) and digits_acc_bfp_m{w}
    for every width: mean test accuracy over ``seeds`` after ``setup``'s epochs."""
    setup = setup or Setup()
    runs = [_runs(dataclasses.replace(setup, seed=s), widths) for s in seeds]
    return {k: round(float(np.mean([r[k] for r in runs])), 4) for k in runs[0]}


def figures() -> dict:
    return {**conversion_rel_err(), **relu_bias(), **digits_accuracy()}
