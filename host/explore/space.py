"""The design space: the generator's parameters that change the cost of
FIXAR's workload, each a short list of values, and how a candidate (one
index per dimension) becomes a config.

A candidate is built only with the config's own constructors: the fields
are replaced on a loaded preset with ``dataclasses.replace``, which runs
every ``__post_init__`` check, so an impossible candidate fails with the
config's own ConfigError (naming the field), never with a rule of ours.

What is searched and why (docs/explore.md):
* ``cores``: 1 or 2; the floorplan puts each core in its own SLR and the
  U50 has two, so more cores cannot be placed (gen/kernel/floorplan.py).
* ``rows``: the PE array's side, a power of two (the generator's array
  rejects other sides: its feature-major memory rotates banks by a power of
  two); ``cols`` follows it, because the config rejects non-square tiles
  (the skewed weight layout needs them). The number of Adam lanes (``cols``)
  and vector lanes (``rows``) follow too: the config has no field for either.
* ``psum_slots``: partial-sum entries per column (the batch slice per core,
  and a weight gradient's K, must fit).
* the depths of the weight, gradient, activation, feature-major and bias
  memories "as the workload needs them": each a level, in steps of the
  depth menu (MEM_ROWS, BIAS_ROWS) from the smallest depth on the menu the
  workload fits for this shape (found with the compiler); level -1 is one
  step too small (the compiler rejects it), deeper levels leave headroom
  (larger networks) and cost UltraRAM and block RAM. Absolute depths were
  tried first: with 25-entry menus the designs that both fit the workload
  and the U50's UltraRAM are a few in 10^8 and no method found one in 300
  evaluations (docs/explore.md).
* ``uram_min_rows``: which memories are UltraRAM (deep) and which block RAM,
  which moves memory between the two budgets.
Not searched: number formats, Adam's Newton steps and the clock, which
change the arithmetic or are a target rather than a design choice.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache

from fixar.config import FixarConfig, load
from fixar.explore import cost
from fixar.explore.cost import HALFCHEETAH, Workload

# Depth menus in rows: 2K, then whole UltraRAM columns (4 096 rows; a depth
# in between pays for the whole block anyway) up to 64K, then steps of 8K
# up to 128K. The workload's needs span 7K to 280K rows over the shapes;
# the default config's are 16K to 40K, where one 4K step is a URAM column
# per 72 bits of width and decides whether an SLR's UltraRAM budget holds.
MEM_ROWS = (2048, *range(4096, 65536 + 1, 4096), *range(73728, 131072 + 1, 8192))
BIAS_ROWS = (32, 64, 128, 256, 512, 1024, 2048)
LEVELS = (-1, 0, 1, 2, 4, 8)
# the absolute depth each level dimension sets, and its menu
MEMORIES = {"weight_level": ("weight_rows", MEM_ROWS), "grad_level": ("grad_rows", MEM_ROWS),
            "act_level": ("act_rows", MEM_ROWS), "xt_level": ("xt_rows", MEM_ROWS),
            "bias_level": ("bias_rows", BIAS_ROWS)}


@dataclass(frozen=True)
class Dim:
    name: str
    values: tuple


DIMS = (
    Dim("cores", (1, 2)),
    Dim("rows", (2, 4, 8, 16, 32, 64)),
    Dim("psum_slots", (256, 512, 1024)),
    Dim("weight_level", LEVELS),
    Dim("grad_level", LEVELS),
    Dim("act_level", LEVELS),
    Dim("xt_level", LEVELS),
    Dim("bias_level", LEVELS),
    Dim("uram_min_rows", (4096, 8192, 16384, 20480, 32768, 65536)),
)


@dataclass(frozen=True)
class Space:
    """Dimensions in the order the policy picks them (the LSTM sees the earlier
    picks), on the base config, for the workload whose needs set the memory levels."""
    dims: tuple[Dim, ...] = DIMS
    base: str = "default"
    workload: Workload = HALFCHEETAH

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(d.values) for d in self.dims)

    @property
    def size(self) -> int:
        n = 1
        for s in self.sizes:
            n *= s
        return n

    def values(self, cand: tuple[int, ...]) -> dict:
        """The menu values the candidate picks (memory levels as levels)."""
        if len(cand) != len(self.dims) or any(not 0 <= i < s for i, s in zip(cand, self.sizes)):
            raise ValueError(f"candidate {cand} does not index the space {self.sizes}")
        return {d.name: d.values[i] for d, i in zip(self.dims, cand)}

    def resolve(self, cand: tuple[int, ...]) -> dict:
        """The candidate's values with each memory level turned into a depth in
        rows. Raises ProgramError when no depth on the menus fits the workload
        for this shape (the compiler's verdict)."""
        v = self.values(cand)
        levels = [k for k in MEMORIES if k in v]
        if not levels:
            return v
        need = smallest_fit(self, v.get("cores", 2), v.get("rows", 16))
        if need is None:
            from fixar.compiler.program import ProgramError
            raise ProgramError(f"{v.get('cores')} x {v.get('rows')} x {v.get('rows')}: the workload fits no "
                               "memory depth on the menus")
        for k in levels:
            name, menu = MEMORIES[k]
            v[name] = menu[min(len(menu) - 1, max(0, menu.index(need[name]) + v.pop(k)))]
        return v

    def build(self, cand: tuple[int, ...]) -> FixarConfig:
        """The candidate as a config; raises the config's ConfigError when it is
        impossible, ProgramError when its shape fits the workload with no depth."""
        return config_from(self.resolve(cand), load(self.base))

    def index(self, values: dict) -> tuple[int, ...]:
        """The candidate of given values (each must be on its menu)."""
        return tuple(d.values.index(values[d.name]) for d in self.dims)


def config_from(v: dict, base: FixarConfig) -> FixarConfig:
    """Fields replaced on ``base``; each replace re-runs the config's checks.
    ``cols`` defaults to ``rows`` (the config accepts square arrays only);
    memory depths are rows of the width the config measures them in."""
    rows = v.get("rows", base.array.rows)
    cols = v.get("cols", rows)
    arr = dataclasses.replace(base.array, cores=v.get("cores", base.array.cores), rows=rows, cols=cols,
                              psum_slots=v.get("psum_slots", base.array.psum_slots))
    m = base.memory
    mem = dataclasses.replace(
        m, weight_words=v.get("weight_rows", m.weight_words // base.array.cols) * cols,
        grad_words=v.get("grad_rows", m.grad_words // base.array.cols) * cols,
        act_words_per_core=v.get("act_rows", m.act_words_per_core // base.array.rows) * rows,
        xt_words_per_core=v.get("xt_rows", m.xt_words_per_core // base.array.rows) * rows,
        bias_words=v.get("bias_rows", m.bias_words // base.array.cols) * cols,
        uram_min_rows=v.get("uram_min_rows", m.uram_min_rows))
    return dataclasses.replace(base, name="explore", array=arr, memory=mem)


@lru_cache(maxsize=512)
def _fits(base: str, cores: int, rows: int, items: tuple, workload) -> bool:
    from fixar.compiler.array_ops import ArrayOpError
    from fixar.compiler.program import ProgramError
    from fixar.config import ConfigError
    try:
        cfg = config_from(dict(cores=cores, rows=rows, **dict(items)), load(base))
        return all(cost.step(cfg, b, workload) for b in workload.batches)
    except (ProgramError, ArrayOpError, ConfigError):
        return False


@lru_cache(maxsize=64)
def smallest_fit(space: Space, cores: int, rows: int) -> dict | None:
    """The smallest menu depth of each memory (and psum_slots, if searched)
    with which the workload compiles at every batch, the others at their
    largest; None when even the largest do not fit. Fitting is monotone in
    each depth, so each is a bisection over its menu (a few compiles)."""
    workload = space.workload
    menus = {name: menu for name, menu in MEMORIES.values()}
    psum = next((d.values for d in space.dims if d.name == "psum_slots"), None)
    if psum:
        menus["psum_slots"] = psum
    top = {k: vals[-1] for k, vals in menus.items()}
    fits = lambda v: _fits(space.base, cores, rows, tuple(sorted(v.items())), workload)
    if not fits(top):
        return None
    pick = {}
    for k, vals in menus.items():
        lo, hi = 0, len(vals) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(top | {k: vals[mid]}) else (mid + 1, hi)
        pick[k] = vals[lo]
    return pick
