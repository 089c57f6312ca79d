"""The products of BFP training steps on the lane array (docs/bfp.md, "A
training step's products on the lane array"): each product's two operands
as the golden model's BfpLayers converts them (fixar.golden.bfp_train.
LaneProduct: forward, transposed and weight-gradient products of both
networks), the cycles each takes on the lane array by the cycle model its
RTL bench matches, and a step's products there against the FXP32 engine's."""
from __future__ import annotations

import dataclasses

import numpy as np

from fixar.compiler.program import Grad, Matmul, compile_ddpg, timeline
from fixar.config import FixarConfig
from fixar.config.timing import lane_array_layer_cycles
from fixar.golden.bfp_train import LaneProduct
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper


def step_products(cfg: FixarConfig, obs_dim: int, act_dim: int, hidden: tuple[int, int], batch: int,
                  steps: int = 1, seed: int = 0, fixed: int | None = None, sweep: bool = False) -> list[LaneProduct]:
    """Every product of ``steps`` golden BFP training steps on random batches,
    in program order. Widths: ``fixed`` bits throughout; or, with ``sweep``,
    the schedule at threshold 0, which widens every layer after every step
    (2, 4, 6, 8 bits); else the config's schedule."""
    if sweep:
        cfg = cfg.variant(name=f"{cfg.name}_sweep", bfp=dataclasses.replace(cfg.bfp, schedule_every=1, threshold=0.0))
    backend = GoldenBackend(obs_dim, act_dim, dataclasses.replace(Hyper(), hidden=tuple(hidden), batch=batch),
                            seed, cfg)
    backend.ddpg.use_bfp(fixed)
    products: list[LaneProduct] = []
    for layers in backend.ddpg.qat.values():
        layers.products = products          # one list: the two networks' products in program order
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        backend.train(rng.normal(size=(batch, obs_dim)), rng.uniform(-1, 1, (batch, act_dim)),
                      rng.normal(size=batch), rng.normal(size=(batch, obs_dim)), rng.random(batch) < 0.1)
    return products


def product_cycles(cfg: FixarConfig, p: LaneProduct) -> int:
    """One product's cycles on the lane array (fixar.config.timing's model)."""
    outputs, groups, g = p.w.mant.shape
    return lane_array_layer_cycles(cfg, outputs, groups * g, p.a.mant.shape[0],
                                   p.w.fmt.mantissa_bits, p.a.fmt.mantissa_bits)


def engine_product_cycles(cfg: FixarConfig, obs_dim: int, act_dim: int, hidden: tuple[int, int],
                          batch: int) -> int:
    """The FXP32 training step's products (its Matmul and Grad instructions)
    on the training engine, by the program's cycle model (the trainer part
    measures the whole step equal to it)."""
    p = compile_ddpg(cfg, obs_dim, act_dim, tuple(hidden), batch)
    cycles = timeline(cfg, p, p.instrs, batch // cfg.array.cores, None)
    return sum(c for ins, c in zip(p.instrs, cycles) if isinstance(ins, (Matmul, Grad)))


def lane_step_figures(cfg: FixarConfig, batches=(64, 512)) -> dict:
    """HalfCheetah's 400-300 DDPG: one step's products at each fixed width on
    the lane array (bfp_lanes_step_product_cycles_b{B}_m{m}), the FXP32
    engine's (fxp32_step_product_cycles_b{B}) and the ratio
    (bfp_lanes_step_product_speedup_b{B}_m{m})."""
    obs, act, hidden = 17, 6, (400, 300)
    figs: dict = {}
    for batch in batches:
        engine = engine_product_cycles(cfg, obs, act, hidden, batch)
        figs[f"fxp32_step_product_cycles_b{batch}"] = engine
        for m in cfg.bfp.widths:
            lanes = sum(product_cycles(cfg, p) for p in step_products(cfg, obs, act, hidden, batch, fixed=m))
            figs[f"bfp_lanes_step_product_cycles_b{batch}_m{m}"] = lanes
            figs[f"bfp_lanes_step_product_speedup_b{batch}_m{m}"] = round(engine / lanes, 3)
            print(f"  B = {batch}, {m} bits: a step's products {lanes} cycles on the lane array, "
                  f"{engine} on the FXP32 engine ({engine / lanes:.2f} x)", flush=True)
    return figs
