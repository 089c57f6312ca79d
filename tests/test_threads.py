"""BLAS's thread pool sized to a run's products (fixar.rl.threads): one
thread for small products, BLAS's own count for large ones, what the
threadpoolctl probe reports afterwards, and the user's environment left alone."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from fixar.rl.threads import SMALL_PRODUCT_MACS, largest_product_macs

PROBE = """
import json
import numpy
from threadpoolctl import threadpool_info
from fixar.rl.backends.float32 import FloatBackend
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper
blas = lambda: [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
start = blas()
seen = []
for backend, batch in ((GoldenBackend, 64), (FloatBackend, 512), (FloatBackend, 64), (GoldenBackend, 512)):
    backend(17, 6, Hyper(batch=batch, hidden=(400, 300)), 0)
    seen.append(blas())
print(json.dumps({"start": start, "seen": seen}))
"""


def _probe(**env) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                              "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_largest_product_of_fixars_networks():
    assert largest_product_macs(17, 6, (400, 300), 64) == 400 * 300 * 64
    assert largest_product_macs(3, 1, (8, 8), 16) == 8 * 8 * 16
    fixar = lambda batch: largest_product_macs(17, 6, (400, 300), batch)
    assert fixar(128) < SMALL_PRODUCT_MACS <= fixar(256)


def test_small_products_run_on_one_blas_thread_and_large_ones_on_blas_own_count():
    got = _probe()
    start = got["start"][0]
    assert start >= 1
    assert got["seen"] == [[1], [start], [1], [start]]


def test_the_users_thread_setting_wins():
    got = _probe(OPENBLAS_NUM_THREADS="2")
    assert got["start"] == [2] and got["seen"] == [[2]] * 4
