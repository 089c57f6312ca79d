"""The hardware feedback: latency and model size of a policy on an array of
fMAC columns (gen/units/bfp_column.py, docs/bfp.md "The fMAC").

A column makes one pass per cycle (the bench holds it to that) and an
m_w x m_a group takes (m_w / 2)(m_a / 2) passes. Projected onto the array's
shape (cores x cols columns, groups of bfp.group rows), a layer of M
outputs and K inputs for B vectors takes

    ceil(M / (cores x cols)) x ceil(K / group) x B x passes(m_w, m_a)

cycles: every column works on its own output, a group per pass set. This is
a projection: the column exists and is bit-exact, the array of them does not
yet (issue 23), so the figures say "projected". Model size counts every
weight's mantissa, one exponent per group and FXP32 biases.
"""
from __future__ import annotations

from math import ceil

from fixar.config import FixarConfig
from fixar.config.bfp import CHUNK_BITS, fmac_shape
from fixar.haq.space import Layer, Policy, Workload, flat, from_widths


def passes(m_w: int, m_a: int) -> int:
    return (m_w // CHUNK_BITS) * (m_a // CHUNK_BITS)


def layer_cycles(cfg: FixarConfig, layer: Layer, m_w: int, m_a: int, batch: int) -> int:
    columns = cfg.array.cores * cfg.array.cols
    return ceil(layer.fan_out / columns) * ceil(layer.fan_in / fmac_shape(cfg).rows) * batch * passes(m_w, m_a)


def latency(cfg: FixarConfig, workload: Workload, policy: Policy, batch: int = 1) -> int:
    return sum(layer_cycles(cfg, layer, w, a, batch) for layer, (w, a) in zip(workload.layers, policy))


def model_bits(cfg: FixarConfig, workload: Workload, policy: Policy) -> int:
    g, e, bias = fmac_shape(cfg).rows, cfg.bfp.exp_bits, cfg.pe.out.bits
    return sum(L.fan_out * L.fan_in * w + L.fan_out * ceil(L.fan_in / g) * e + L.fan_out * bias
               for L, (w, _) in zip(workload.layers, policy))


def enforce(cfg: FixarConfig, workload: Workload, policy: Policy, max_cycles: int,
            widths: tuple[int, ...]) -> Policy:
    """HAQ's budget rule: while the policy is over the latency budget, lower
    the width of each decision in turn, one notch, checking after each.
    Raises ValueError when even the narrowest widths miss the budget."""
    bits = flat(policy)
    if latency(cfg, workload, from_widths(workload, [widths[0]] * len(bits))) > max_cycles:
        raise ValueError(f"latency budget {max_cycles} cycles: not met even at {widths[0]}-bit mantissas")
    while latency(cfg, workload, from_widths(workload, bits)) > max_cycles:
        for i, b in enumerate(bits):
            if b > widths[0]:
                bits[i] = widths[widths.index(b) - 1]
                if latency(cfg, workload, from_widths(workload, bits)) <= max_cycles:
                    break
    return from_widths(workload, bits)
