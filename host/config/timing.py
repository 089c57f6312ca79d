"""Pipeline latencies and the target clock: the facts of the generated
hardware that the compiler's cycle model needs, derived from the config
alone, with no Amaranth, so the golden path never loads the generator.

The generator builds each pipeline to these numbers and fails elaboration
when the stages it built disagree (fixar.gen.lib.pipe.Stages); every bench
times its outputs by them (the manifest carries them), so a wrong number
here fails a bench too.
"""
from __future__ import annotations

from dataclasses import dataclass

from fixar.config import FixarConfig

# Register stages of each unit, named as the generator's docstrings name them.
PE_STAGES = 5            # input, products, accumulate, recombine, output (gen/units/pe.py)
ACTIVATION_STAGES = 5    # input, |x|, table read, product, point + product and sign into the output
CORE_FRONT_STAGES = 5    # input, products, column sums, finished sums, cross-core add
QUANTIZER_STAGES = 7     # the QAT quantizer at the core's output (passed through when off)
ARRAY_PIPE_STAGES = 2    # controller -> cores: the request, then the memories' read
VECTOR_STAGES = 3        # inputs, products and masks, rounding into the output register
# Adam: inputs; products, sums, m rounded, v sum, v rounded; v + E2, normalise,
# seed; P, P rounded, q; the guard shift, the rounded update, w - update; ADAM_NEWTON_STAGES per Newton
# step (y^2, times the mantissa, 3 minus it, times y)
ADAM_FIXED_STAGES = 15
ADAM_NEWTON_STAGES = 4
PRNG_STAGES = 0          # the xorshift state is the output
CORE_STAGES = CORE_FRONT_STAGES + ACTIVATION_STAGES + QUANTIZER_STAGES
ARRAY_STAGES = ARRAY_PIPE_STAGES + CORE_STAGES


@dataclass(frozen=True)
class Timing:
    """Latencies in clock cycles from an input to its output, and the clock."""

    pe: int
    activation: int
    core: int
    array_pipe: int
    array: int
    vector: int
    adam: int
    prng: int
    clock_hz: float


def timing(cfg: FixarConfig) -> Timing:
    return Timing(pe=PE_STAGES, activation=ACTIVATION_STAGES, core=CORE_STAGES, array_pipe=ARRAY_PIPE_STAGES,
                  array=ARRAY_STAGES, vector=VECTOR_STAGES,
                  adam=ADAM_FIXED_STAGES + ADAM_NEWTON_STAGES * cfg.adam.rsqrt_newton, prng=PRNG_STAGES,
                  clock_hz=cfg.target.clock_mhz * 1e6)
