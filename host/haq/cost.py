"""The hardware feedback: latency and model size of a policy on the lane
array (gen/units/bfp_lane_array.py, docs/bfp.md "The lane array"): a BFP
lane column per column of the array, bit- and cycle-exact in its bench.

A pass multiplies one 2-bit chunk of each row's weight mantissa by a whole
activation word, which packs the m_a-bit mantissas of lanes(m_a) batch
vectors, so an m_w-bit weight group takes m_w / 2 passes for lanes(m_a)
vectors at once. A layer's cycles are the array's cycle model
(fixar.config.timing.lane_array_layer_cycles): per output tile and batch
pass, the passes of its groups but at least a cycle per vector it hands
out (one sum a column a cycle), and the pipeline's fill. Narrow weights
take fewer passes; narrow activations serve more vectors a pass, which
saves cycles only while the passes, not the outputs, bound the tile: at
B = 1 (an actor choosing one action) the activation width costs nothing.
Model size counts every weight's mantissa, one exponent per group and
FXP32 biases.
"""
from __future__ import annotations

from math import ceil, lcm

from fixar.config import FixarConfig
from fixar.config.bfp import fmac_shape, lane_shape
from fixar.config.timing import lane_array_layer_cycles
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
    return lane_array_layer_cycles(cfg, layer.fan_out, layer.fan_in, batch, m_w, m_a)


def latency(cfg: FixarConfig, workload: Workload, policy: Policy) -> int:
    """Cycles of the lane array for ``priced_batch`` vectors through every
    layer, one layer's run after another (each from its start to its last sum)."""
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
        return measure(bits[:i] + [widths[0]] + bits[i + 1:]) < measure(bits)

    def over() -> tuple[bool, bool]:
        return cycles(bits) > max_cycles, max_bits is not None and size(bits) > max_bits

    while any(over()):
        lowered = False
        for i, b in enumerate(bits):
            late, big = over()
            if not (late or big):
                break
            # asked afresh each time: once the outputs bound a tile, narrower activations buy nothing
            if b > widths[0] and ((late and saves(cycles, i)) or (big and saves(size, i))):
                bits[i] = widths[widths.index(b) - 1]
                lowered = True
        if not lowered:
            raise ValueError(f"budgets {max_cycles} cycles / {max_bits} bits: no narrower width of "
                             f"{from_widths(workload, bits)} lowers what is over")
    return from_widths(workload, bits)
