"""The hardware feedback: latency and model size of a policy on an array of
lane columns (gen/units/bfp_lanes.py, docs/bfp.md "Lanes: several products
per PE").

A lane column makes one pass per cycle (its throughput bench holds it to
that). A pass multiplies one 2-bit chunk of each row's weight mantissa by a
whole activation word, which packs the m_a-bit mantissas of lanes(m_a)
batch vectors. So an m_w-bit weight group takes m_w / 2 passes for lanes(m_a)
vectors at once, and a layer of M outputs and K inputs for B vectors takes

    ceil(M / (cores x cols)) x ceil(K / group) x ceil(B / lanes(m_a)) x m_w / 2

cycles of the columns (the pipeline's fill and the output stage come on
top). Narrow weights take fewer passes; narrow activations serve more
vectors a pass, which saves cycles only when there are vectors to pack: at
B = 1 (an actor choosing one action) the activation width costs nothing.
This is a projection: the lane column is generated and bit-exact, an array
of them is not built (issue 23), so the figures say "projected". Model size
counts every weight's mantissa, one exponent per group and FXP32 biases.
"""
from __future__ import annotations

from math import ceil, lcm

from fixar.config import FixarConfig
from fixar.config.bfp import fmac_shape, lane_shape
from fixar.haq.space import Layer, Policy, Workload, flat, from_widths


def priced_batch(cfg: FixarConfig, workload: Workload) -> int:
    """The vectors a latency is priced for: the workload's own batch, or by
    default the least common multiple of the lane counts, so that no width
    pays for a part-filled pass (80 for 2 to 8 bits in a 32-bit word)."""
    if workload.batch is not None:
        return workload.batch
    lanes = lane_shape(cfg)
    return lcm(*(lanes.lanes(m) for m in cfg.bfp.widths))


def layer_cycles(cfg: FixarConfig, layer: Layer, m_w: int, m_a: int, batch: int) -> int:
    lanes = lane_shape(cfg)
    columns = cfg.array.cores * cfg.array.cols
    return (ceil(layer.fan_out / columns) * ceil(layer.fan_in / lanes.fmac.rows)
            * ceil(batch / lanes.lanes(m_a)) * lanes.passes(m_w))


def latency(cfg: FixarConfig, workload: Workload, policy: Policy) -> int:
    """Cycles of the columns for ``priced_batch`` vectors through every layer."""
    batch = priced_batch(cfg, workload)
    return sum(layer_cycles(cfg, layer, w, a, batch) for layer, (w, a) in zip(workload.layers, policy))


def model_bits(cfg: FixarConfig, workload: Workload, policy: Policy) -> int:
    g, e, bias = fmac_shape(cfg).rows, cfg.bfp.exp_bits, cfg.pe.out.bits
    return sum(L.fan_out * L.fan_in * w + L.fan_out * ceil(L.fan_in / g) * e + L.fan_out * bias
               for L, (w, _) in zip(workload.layers, policy))


def enforce(cfg: FixarConfig, workload: Workload, policy: Policy, max_cycles: int,
            widths: tuple[int, ...], max_bits: int | None = None) -> Policy:
    """HAQ's budget rule: while the policy is over a budget (the latency's,
    and the model size's when ``max_bits`` is given), lower the width of
    each decision in turn, one notch, checking after each. Only decisions
    that would lower an exceeded measure at the narrowest width are lowered
    (an activation at B = 1 fills no lanes; activations never change the
    model size), so the rule costs quality only where it buys what is over.
    Raises ValueError when even the narrowest widths miss a budget."""
    bits = flat(policy)

    def cycles(b: list[int]) -> int:
        return latency(cfg, workload, from_widths(workload, b))

    def size(b: list[int]) -> int:
        return model_bits(cfg, workload, from_widths(workload, b))

    narrowest = [widths[0]] * len(bits)
    if cycles(narrowest) > max_cycles:
        raise ValueError(f"latency budget {max_cycles} cycles: not met even at {widths[0]}-bit mantissas")
    if max_bits is not None and size(narrowest) > max_bits:
        raise ValueError(f"model-size budget {max_bits} bits: not met even at {widths[0]}-bit mantissas")

    def saves(measure, i: int) -> bool:
        # a layer's cycles and bits depend on its own two widths only, so this holds for the whole loop
        return measure(bits[:i] + [widths[0]] + bits[i + 1:]) < measure(bits)

    helps_latency = [saves(cycles, i) for i in range(len(bits))]
    helps_size = [saves(size, i) for i in range(len(bits))]

    def over() -> tuple[bool, bool]:
        return cycles(bits) > max_cycles, max_bits is not None and size(bits) > max_bits

    while any(over()):
        for i, b in enumerate(bits):
            late, big = over()
            if b > widths[0] and ((late and helps_latency[i]) or (big and helps_size[i])):
                bits[i] = widths[widths.index(b) - 1]
                if not any(over()):
                    break
    return from_widths(workload, bits)
