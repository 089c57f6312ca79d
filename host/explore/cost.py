"""The workload's cycles from the project's cycle model, and IPS as FIXAR
defines it: B x clock / (training step + acting pass) cycles.

The cycle model is ``fixar.compiler.program.step_cycles`` on the program
``compile_ddpg`` compiles for the config, the one the RTL bench matches
cycle for cycle (tb/test_engine.py); nothing here estimates cycles.
A workload that does not fit the config's memories raises ProgramError.
"""
from __future__ import annotations

from dataclasses import dataclass

from fixar.compiler.program import compile_ddpg, step_cycles
from fixar.config import FixarConfig
from fixar.config.timing import timing


@dataclass(frozen=True)
class Workload:
    """DDPG's actor and critic for one task; the default is FIXAR's: 400-300
    networks on HalfCheetah (17 observations, 6 actions)."""
    obs: int = 17
    act: int = 6
    hidden: tuple[int, ...] = (400, 300)
    batches: tuple[int, ...] = (64, 512)
    name: str = "halfcheetah"


HALFCHEETAH = Workload()
# The second shape: the 64-64 networks of the project's reward studies on
# Hopper (docs/study), a workload far smaller than the array's tiles expect.
HOPPER64 = Workload(obs=11, act=3, hidden=(64, 64), name="hopper64")
WORKLOADS = {w.name: w for w in (HALFCHEETAH, HOPPER64)}


def step(cfg: FixarConfig, batch: int, w: Workload = HALFCHEETAH) -> dict:
    """Cycles of one training step and one acting pass, and the IPS they give."""
    p = compile_ddpg(cfg, w.obs, w.act, w.hidden, batch)
    train = step_cycles(cfg, p, batch)
    act = step_cycles(cfg, p, batch, acting=True)
    return {"train_cycles": train, "act_cycles": act, "ips": batch * timing(cfg).clock_hz / (train + act)}
