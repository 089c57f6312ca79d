"""One evaluation of a candidate: build the config (the config's checks),
compile the workload at every batch (the compiler's checks), count the
cycles (the cycle model) and the resources per SLR against the U50 budget.

The search sees one number, the fitness:
* the objective at the evaluator's batch / the default config's (about 1
  for the default), less TIE x the design's largest per-SLR share of the
  UltraRAM or block RAM budget, when everything holds. The objectives
  (OBJECTIVES): ``ips``, FIXAR's figure of merit; ``ips_per_dsp``, IPS
  per DSP48E2 of the whole kernel (what a DSP buys: the resource FIXAR's
  PEs are made of and the U50's scarcest for this design). Both depend on
  the array's shape only (deeper memories add no cycle and no DSP), so
  many designs tie; the small memory term (at most TIE = 0.05) ranks them
  by the memory they leave free and never outweighs a difference in shape
  (the shapes differ by far more than 5 % in either objective);
* -u / (1 + u) for a design over the U50 budget, u the sum over SLRs and
  resources of the fractions over budget: ConfuciuX's penalty for
  overshooting the budget, graded (in (-1, 0)) so that a search can tell
  "nearly fits" from "far over";
* between -1 and -2 for a workload that does not fit the memories (the
  compiler's ProgramError), by how many menu steps the memories and the
  partial-sum slots are short of the smallest that fit this shape (found
  with the compiler, cached per shape), so that the search can tell
  "one memory a step too small" from "every memory far too small";
* -2 for a candidate the config or the generator rejects, or whose shape no
  memory on the menus fits.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from fixar.compiler.array_ops import ArrayOpError
from fixar.compiler.program import ProgramError
from fixar.config import ConfigError
from fixar.explore import cost, resources
from fixar.explore.space import MEMORIES, Space, smallest_fit

OBJECTIVES = {
    "ips": lambda ips, placed: ips,
    "ips_per_dsp": lambda ips, placed: ips / sum(t["dsp48e2"] for t in placed["total"]),
}
REJECTED = -2.0
TIE = 0.05
STEPS_TO_REJECTED = 10     # a candidate this many menu steps short scores as badly as a rejected one


@dataclass
class Evaluation:
    cand: tuple[int, ...]
    status: str                      # ok, over (budget), nofit (compiler), invalid (config)
    fitness: float
    message: str = ""
    ips: dict[int, float] = field(default_factory=dict)
    cycles: dict[int, dict] = field(default_factory=dict)
    place: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Evaluator:
    """Evaluates candidates of ``space`` (and its workload) for ``objective``
    (a key of OBJECTIVES) at ``batch``; caches by candidate (every call
    still counts as one evaluation: ``calls``)."""

    def __init__(self, space: Space | None = None, batch: int = 64, objective: str = "ips"):
        if objective not in OBJECTIVES:
            raise ValueError(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
        self.space = space or Space()
        self.batch = batch
        self.objective = objective
        self.cache: dict[tuple, Evaluation] = {}
        self.calls = 0
        self._ref: float | None = None

    @property
    def workload(self) -> cost.Workload:
        return self.space.workload

    def _short(self, cand: tuple[int, ...]) -> float:
        """-1 less a tenth per menu step the memories (and psum_slots) are short of fitting; -2 at worst."""
        v = self.space.values(cand)
        need = smallest_fit(self.space, v.get("cores", 2), v.get("rows", 16))
        if need is None:
            return REJECTED
        got = self.space.resolve(cand)
        menus = {name: menu for name, menu in MEMORIES.values()} | {
            d.name: d.values for d in self.space.dims if d.name == "psum_slots"}
        steps = sum(max(0, menus[k].index(need[k]) - menus[k].index(got[k])) for k in need if k in got)
        return -1.0 - min(1.0, steps / STEPS_TO_REJECTED)

    @property
    def reference_ips(self) -> float:
        """The base config's IPS at the evaluator's batch."""
        from fixar.config import load
        return cost.step(load(self.space.base), self.batch, self.workload)["ips"]

    @property
    def reference(self) -> float:
        """The base config's objective: the fitness's unit."""
        if self._ref is None:
            from fixar.config import load
            self._ref = self.value(self.reference_ips, resources.place(load(self.space.base)))
        return self._ref

    def value(self, ips: float, placed: dict) -> float:
        """The objective of a design of this IPS and placement."""
        return OBJECTIVES[self.objective](ips, placed)

    def __call__(self, cand) -> float:
        return self.evaluate(cand).fitness

    def evaluate(self, cand) -> Evaluation:
        self.calls += 1
        cand = tuple(int(i) for i in cand)
        if cand not in self.cache:
            self.cache[cand] = self._evaluate(cand)
        return self.cache[cand]

    def _evaluate(self, cand: tuple[int, ...]) -> Evaluation:
        try:
            cfg = self.space.build(cand)
        except ConfigError as exc:
            return Evaluation(cand, "invalid", REJECTED, str(exc))
        except ProgramError as exc:     # the shape fits the workload with no depth on the menus
            return Evaluation(cand, "nofit", REJECTED, str(exc))
        try:
            steps = {b: cost.step(cfg, b, self.workload) for b in self.workload.batches}
            placed = resources.place(cfg)
        except (ProgramError, ArrayOpError) as exc:
            return Evaluation(cand, "nofit", self._short(cand), str(exc))
        except (ConfigError, ValueError) as exc:     # the generator's own checks, or cores the U50 cannot place
            return Evaluation(cand, "invalid", REJECTED, str(exc))
        ips = {b: s["ips"] for b, s in steps.items()}
        cycles = {b: {k: s[k] for k in ("train_cycles", "act_cycles")} for b, s in steps.items()}
        if placed["overuse"] > 0:
            slr, kind = placed["worst"]
            u = placed["excess"]
            return Evaluation(cand, "over", -u / (1.0 + u),
                              f"SLR{slr} {kind} {placed['overuse']:.1%} over budget", ips, cycles, placed)
        fitness = self.value(ips[self.batch], placed) / self.reference - TIE * memory_share(placed)
        return Evaluation(cand, "ok", fitness, "", ips, cycles, placed)


def memory_share(placed: dict) -> float:
    """The largest fraction of an SLR's UltraRAM or block RAM budget the design uses."""
    cap = resources.budget()
    return max(t[k] / cap[k] for t in placed["total"] for k in ("uram", "bram36"))

