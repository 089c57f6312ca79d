"""Bit-exact numpy golden model of the FIXAR datapath.

It defines every rounding, saturation and overflow of the hardware. It reads
widths from :mod:`fixar.config` only and never imports the generator, so a
bug cannot hide in both implementations at once.
"""
from fixar.golden.fixed import dequantize, overflow, quantize, requantize, saturate, wrap
from fixar.golden.matmul import exact_matmul_lanes, pe_matmul
from fixar.golden.pe import pe_trace, split_lanes

__all__ = [
    "dequantize", "overflow", "quantize", "requantize", "saturate", "wrap",
    "exact_matmul_lanes", "pe_matmul", "pe_trace", "split_lanes",
]
