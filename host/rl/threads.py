"""How many threads BLAS may use for a training run's products.

A DDPG step's matrix products are small at the usual batch sizes: with
FIXAR's 400-300 networks the largest is 300 x 400 x B. Below about 2^24
multiply-adds (B <= 128 there) a second BLAS thread gains nothing, and
OpenBLAS's idle threads spin for a while after each product, so on a
2-core machine they take the core that the golden model's Adam threads
(fixar.golden.adam.golden_threads) and the element-wise work run on.
Measured on this project's 2-core machine (quiet, medians of 15 steps,
400-300): one BLAS thread instead of two took the golden step at B=64 from
12.2-13.2 to 11.2-12.2 ms, its numpy-only route from 28.3-28.6 to
24.7-26.4 ms and the float32 step at B=128 from 7.3-7.4 to 5.8-5.9 ms; at
B=256 and 512 two threads were faster again (golden 20.1-20.4 against
22.0-24.6 ms at B=256). docs/golden.md has the figures of `make bench`.

Process-wide, like the heap settings (fixar.rl.heap): every backend sizes
the pool for its own products when it is made, so the float and golden
backends of one process (make bench's speed ratio) run with the same
threads. A user's OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS
wins: nothing is changed then (the Ray study sets them for its workers).

The golden model's loops for the log-sum multipliers (Mitchell, MBM:
fixar.golden.multiplier_kernels) take their threads apart, from
fixar.golden.adam.loop_threads: the machine's cores unless the user says
otherwise (FIXAR_THREADS, or one of the variables above; a Ray run with one
CPU sets them all to 1), and only for products of 2^24 multiplications or
more (fixar.golden.multiplier_routes says why: at B=64 one thread was
faster on this project's machine). The step-time ratio
(fixar.figures.multipliers) thus compares each route at its own fastest
setting, and the matmul figure's CPU-time ratio still reports what an
approximate product costs summed over all its threads.
"""
from __future__ import annotations

import os

from fixar.golden.adam import USER_THREAD_ENV

SMALL_PRODUCT_MACS = 1 << 24
_controller = None
_start_threads: int | None = None     # BLAS's own pool size before any change


def largest_product_macs(obs_dim: int, act_dim: int, hidden: tuple[int, ...], batch: int) -> int:
    """Multiply-adds of the largest layer product of a step's networks (the
    critic's input is the state and the action)."""
    sizes = [obs_dim + act_dim, *hidden, max(act_dim, 1)]
    return max(a * b for a, b in zip(sizes, sizes[1:])) * batch


def size_blas_threads(product_macs: int) -> int | None:
    """One BLAS thread when the largest product has fewer than
    SMALL_PRODUCT_MACS multiply-adds, else BLAS's own pool size; returns the
    number set, or None when the user's environment decides (or no BLAS
    library threadpoolctl knows is loaded)."""
    global _controller, _start_threads
    if any(os.environ.get(name) for name in USER_THREAD_ENV):
        return None
    from threadpoolctl import ThreadpoolController

    if _controller is None:
        _controller = ThreadpoolController()
        _start_threads = max((lib.num_threads for lib in _controller.select(user_api="blas").lib_controllers),
                             default=0)
    if not _start_threads:
        return None
    threads = 1 if product_macs < SMALL_PRODUCT_MACS else _start_threads
    _controller.limit(limits=threads, user_api="blas")
    return threads
