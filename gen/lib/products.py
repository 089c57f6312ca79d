"""Wide exact products as partial products that each fit one DSP48E2
multiplier (27 x 18 signed), summed in a registered adder tree.

Synthesis builds ``a * b`` wider than one DSP from several DSPs and LUT
adders that combine their outputs in the same clock cycle: a 33 x 31
product is four DSPs and two chained carry chains after them, which the
timing estimate (fixar.figures.timing) shows as the longest path of the
units that multiply wide operands. Here the partial products are registered
(the DSPs' own M/P registers in a real flow) and summed one tree level per
stage, so no stage holds more than one adder.

A two's-complement operand is split into unsigned low chunks and a signed
top chunk; a = sum(chunk_i 2^(k_i)), so a b = sum over chunk pairs of
a_i b_j 2^(k_i + l_j), exactly.
"""
from __future__ import annotations

from amaranth.hdl import signed

from fixar.config.timing import DSP_PORTS, product_orientation
from fixar.gen.lib.pipe import Schedule, Timed

DSP_A, DSP_B = DSP_PORTS      # DSP48E2's signed multiplier ports (the wide one, the narrow one)


def chunks(value, chunk: int) -> list[tuple[object, int]]:
    """``value`` (its own signedness) as (chunk, shift) pairs: unsigned low
    chunks of ``chunk`` bits, the top one signed when ``value`` is."""
    width, is_signed = len(value), value.shape().signed
    out, k = [], 0
    while k < width:
        n = min(chunk, width - k)
        part = value[k:k + n]
        out.append((part.as_signed() if is_signed and k + n == width else part, k))
        k += n
    return out


def dsp_chunks(value, port: int) -> list[tuple[object, int]]:
    # an unsigned chunk needs one bit more than its width on a signed port
    return chunks(value, port - 1)


def partial_terms(a, b) -> list[tuple[object, object, int]]:
    """(chunk of a, chunk of b, shift) for every DSP-sized partial product
    of a * b, the operands on the ports fixar.config.timing says."""
    if not product_orientation(len(a), len(b)):
        a, b = b, a
    return [(ac, bc, ak + bk) for ac, ak in dsp_chunks(a, DSP_A) for bc, bk in dsp_chunks(b, DSP_B)]


def product(sched: Schedule, name: str, a: Timed, b: Timed) -> Timed:
    """a * b exactly (signed as the operands are), ready 1 +
    fixar.config.timing.product_levels stages after the later operand."""
    at = max(a.at, b.at)
    av, bv = sched.at(a, at), sched.at(b, at)
    terms = [(sched.reg(f"{name}_pp{i}", signed(len(x) + len(y) + 1), lambda u, v: u * v, Timed(x, at), Timed(y, at)),
              k) for i, (x, y, k) in enumerate(partial_terms(av, bv))]
    return tree_sum(sched, name, terms, len(av) + len(bv))


def tree_sum(sched: Schedule, name: str, terms: list[tuple[Timed, int]], width: int, addend: int = 0) -> Timed:
    """sum(term << shift) + ``addend`` as a balanced tree of two-input adds
    (the addend rides in the first add of the lowest terms), one level per
    stage. ``width``: the caller's bound, |every partial sum| < 2^width."""
    terms = sorted(terms, key=lambda t: t[1])
    low = terms[0][1]
    if addend & ((1 << low) - 1):
        raise ValueError(f"{name}: the addend {addend} has bits below the lowest term's shift {low}")
    level = 0
    while len(terms) > 1 or addend:
        if len(terms) == 1:
            terms = terms + [(Timed(addend >> low, terms[0][0].at), low)]
            addend = 0
        nxt = []
        for k in range(0, len(terms) - 1, 2):
            (x, xs), (y, ys) = terms[k], terms[k + 1]
            s, plus = min(xs, ys), (addend >> xs if k == 0 else 0)
            fn = lambda u, v, xs=xs, ys=ys, s=s, plus=plus: (u << (xs - s)) + (v << (ys - s)) + plus
            nxt.append((sched.reg(f"{name}_sum{level}_{k // 2}", signed(width + 1 - s), fn, x, y), s))
        addend = 0
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms, level = nxt, level + 1
    (t, s), = terms
    return Timed(t.value << s, t.at) if s else t
