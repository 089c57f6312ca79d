"""Bytes the U50 kernel moves per training step, from the host's own packing
code (fixar.driver.kernel_io, verified against the simulated kernel): one step's
command buffer (the batch, the step sizes, RUN) and its output (the cycle
count, q and y), for HalfCheetah's networks on the default config, and the
transfer time that implies at stated PCIe and HBM bandwidths. The kernel
reaches HBM through one AXI master, which moves at most one beat per kernel
clock: below one pseudo-channel's rate at 164 MHz (10.5 of 14.4 GB/s), so the
HBM time is taken at the smaller of the two."""
from __future__ import annotations

import dataclasses

import numpy as np

from fixar.config import FixarConfig
from fixar.config.timing import timing
from fixar.driver.engine import EngineHost
from fixar.driver.kernel_io import BEAT_BYTES, CommandBuffer
from fixar.golden.fixed import quantize
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper

PCIE_GBPS = 12.0    # PCIe Gen3 x16, what a host-to-card DMA typically sustains (of 15.75 raw)
HBM_GBPS = 14.4     # one U50 HBM pseudo-channel: 460 GB/s over 32


def step_bytes(cfg: FixarConfig, batch: int, obs: int = 17, act: int = 6, hidden=(400, 300)) -> int:
    hp = dataclasses.replace(Hyper(), hidden=hidden, batch=batch)
    host = EngineHost(cfg, GoldenBackend(obs, act, hp, seed=0, cfg=cfg).ddpg, act, hidden, batch)
    rng = np.random.default_rng(0)
    f = cfg.pe.act32
    inputs = host.batch_tensors(quantize(rng.normal(size=(obs, batch)), f), quantize(rng.normal(size=(act, batch)), f),
                                quantize(rng.normal(size=batch), f), quantize(rng.normal(size=(obs, batch)), f),
                                np.zeros(batch, bool))
    cb = CommandBuffer(cfg)
    cb.writes(host.tensor_writes(inputs, batch) + host.step_writes(host.step_sizes()))
    cb.run(0)
    for key, r in host.stats_reads().items():
        cb.read(r, key)
    cb.end()
    return (len(cb.beats) + cb.output_beats()) * BEAT_BYTES


def kernel_bytes(cfg: FixarConfig) -> dict:
    port = BEAT_BYTES * timing(cfg).clock_hz / 1e9      # one beat per kernel cycle on the one master
    hbm = min(HBM_GBPS, port)
    figs = {"kernel_pcie_gbps_assumed": PCIE_GBPS, "kernel_hbm_gbps_assumed": HBM_GBPS,
            "kernel_axi_port_gbps": round(port, 2)}
    for batch in (64, 512):
        n = step_bytes(cfg, batch)
        figs[f"kernel_bytes_per_step_b{batch}"] = n
        figs[f"kernel_pcie_us_per_step_b{batch}"] = round(n / (PCIE_GBPS * 1e3), 2)
        figs[f"kernel_hbm_us_per_step_b{batch}"] = round(n / (hbm * 1e3), 2)
    return figs
