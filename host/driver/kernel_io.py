"""The U50 kernel's command stream, host side (docs/kernel.md): the engine
writes, reads and runs of :mod:`fixar.driver.engine` packed into 512-bit beats for
the command buffer, and the output buffer unpacked. The xrt backend and the
kernel's cocotb bench both use this module, so what is verified against the
simulated kernel is what goes to the board.

Header beat: bits 0-7 the command (``KernelOp``), 8-15 the port or path
number (``KERNEL_WRITE_PORTS`` / ``KERNEL_READ_PATHS``), 32-63 the first row,
64-95 the row count, 96-127 the argument (write enable mask, read enable
value, program counter or seed). A WRITE is followed by its rows, each the
concatenation of the port's data inputs in whole beats; READ appends its
rows to the output buffer the same way, RUN one beat holding the engine's
cycles (bits 0-63) and PRNG_GET one beat holding the state.

After a run the host reads the kernel's status register (``STATUS_OFFSET``)
and passes it to :func:`check_status`, which raises :class:`KernelRunError`
when the kernel's AXI master got an error response (SLVERR, DECERR) in the
run: then the output buffer must not be used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from fixar.config import (
    ISA_FIELD_BITS,
    ISA_WORDS,
    KERNEL_BEAT_BITS,
    KERNEL_READ_PATHS,
    KERNEL_WRITE_PORTS,
    FixarConfig,
    KernelOp,
    quantizer_widths,
)
from fixar.driver.engine import Read, Write

BEAT_BYTES = KERNEL_BEAT_BITS // 8

# The kernel's read-only status register, as fixar.gen.kernel.top.Kernel
# defines it (the driver may not import the generator: tb/test_kernel.py
# checks that the two agree, and its bench reads the register through these).
# It describes the last run and is cleared when a run starts.
STATUS_OFFSET = 0x40
STATUS_ERROR = 1 << 0           # any error response in the run
STATUS_WRITE_ERROR = 1 << 1     # a write burst of the output buffer: BRESP SLVERR or DECERR
STATUS_READ_ERROR = 1 << 2      # a read of the command buffer: RRESP SLVERR or DECERR
STATUS_BRESP_AT, STATUS_RRESP_AT = 8, 10    # the first such response's code, two bits each
AXI_RESP = ("OKAY", "EXOKAY", "SLVERR", "DECERR")


class KernelIOError(ValueError):
    pass


class KernelRunError(RuntimeError):
    """A kernel run that finished with an AXI error response: its results are not valid."""

    def __init__(self, status: int):
        self.status = status
        super().__init__(f"the kernel's run failed (status register {status:#x}): "
                         + "; ".join(status_errors(status)))


def status_errors(status: int) -> list[str]:
    """What a status register value reports, one phrase per error (empty: none)."""
    out = []
    if status & STATUS_WRITE_ERROR:
        resp = AXI_RESP[(status >> STATUS_BRESP_AT) & 3]
        out.append(f"a write of the output buffer got {resp}: the output buffer is not reliable")
    if status & STATUS_READ_ERROR:
        resp = AXI_RESP[(status >> STATUS_RRESP_AT) & 3]
        out.append(f"a read of the command buffer got {resp}: the kernel stopped there, later commands did not run")
    if status and not out:
        out.append("an error bit the host does not know")
    if any("DECERR" in e for e in out):
        out.append("DECERR: no memory at that address (is the buffer in the bank of its kernel argument?)")
    return out


def check_status(status: int) -> None:
    """Raise :class:`KernelRunError` if the kernel's status register (read at
    ``STATUS_OFFSET`` after the run's ap_done) reports an error."""
    if status:
        raise KernelRunError(status)


def port_widths(cfg: FixarConfig) -> dict[str, int]:
    """Bit widths of the training engine's host data ports (the generated
    fixar_trainer's manifest must agree: tb/test_kernel.py checks it)."""
    ar, pe, ad = cfg.array, cfg.pe, cfg.adam
    R, C, N = ar.rows, ar.cols, ar.cores
    qw = quantizer_widths(cfg)
    return {"prog_data": ISA_WORDS * ISA_FIELD_BITS, "scal_data": 64, "wm_data": C * pe.weight.bits,
            "bm_data": C * pe.out.bits, "am_data": R * pe.act32.bits, "tm_data": R * pe.act32.bits,
            "st_m_data": C * ad.m.bits, "st_v_data": C * ad.v.bits, "qt_delta": qw["delta"], "qt_zero": qw["zero"],
            "qt_magic": qw["magic"], "qt_shift": qw["shift"],
            "wm_rdata": C * pe.weight.bits, "bm_rdata": C * pe.out.bits, "am_rdata": N * R * pe.act32.bits,
            "st_m_rdata": C * ad.m.bits, "st_v_rdata": C * ad.v.bits, "st_bm_rdata": C * ad.m.bits,
            "st_bv_rdata": C * ad.v.bits, "rg_lo": pe.out.bits, "rg_hi": pe.out.bits}


def row_beats(widths: list[int]) -> int:
    return max(1, math.ceil(sum(widths) / KERNEL_BEAT_BITS))


def _header(op: KernelOp, port: int = 0, base: int = 0, count: int = 0, arg: int = 0) -> int:
    return int(op) | (port << 8) | (base << 32) | (count << 64) | (arg << 96)


@dataclass
class CommandBuffer:
    """Commands for one kernel run; :meth:`results` parses its output buffer."""

    cfg: FixarConfig
    beats: list[int] = field(default_factory=list)
    outputs: list[tuple] = field(default_factory=list)   # (kind, key, widths or None, rows), in output order

    def __post_init__(self):
        self.widths = port_widths(self.cfg)
        self.write_ports = {prefix: (i, data) for i, (prefix, data) in enumerate(KERNEL_WRITE_PORTS)}
        self.read_paths = {(addr, data): (i, re) for i, (addr, data, re) in enumerate(KERNEL_READ_PATHS)}

    def _row(self, values: tuple[int, ...], widths: list[int]) -> list[int]:
        word, shift = 0, 0
        for v, w in zip(values, widths):
            if not 0 <= v < 1 << w:
                raise KernelIOError(f"a value of {v.bit_length()} bits does not fit its {w}-bit port")
            word |= v << shift
            shift += w
        n = row_beats(widths)
        mask = (1 << KERNEL_BEAT_BITS) - 1
        return [(word >> (k * KERNEL_BEAT_BITS)) & mask for k in range(n)]

    def write(self, w: Write) -> None:
        if w.port not in self.write_ports:
            raise KernelIOError(f"no kernel write port {w.port!r}; known: {', '.join(self.write_ports)}")
        idx, data = self.write_ports[w.port]
        if tuple(w.data) != data:
            raise KernelIOError(f"port {w.port}: data inputs {w.data}, the kernel's are {data}")
        widths = [self.widths[f"{w.port}_{d}"] for d in data]
        self.beats.append(_header(KernelOp.WRITE, idx, w.base, len(w.words), w.we))
        for word in w.words:
            self.beats.extend(self._row(word if isinstance(word, tuple) else (word,), widths))

    def writes(self, ws: list[Write]) -> None:
        for w in ws:
            self.write(w)

    def read(self, r: Read, key) -> None:
        path = (r.addr, tuple(r.data))
        if path not in self.read_paths:
            raise KernelIOError(f"no kernel read path {path}")
        idx, re = self.read_paths[path]
        if (re is None) != (r.re is None) or (re and re != r.re):
            raise KernelIOError(f"read path {path}: enable {r.re}, the kernel's is {re}")
        self.beats.append(_header(KernelOp.READ, idx, r.base, r.n, r.re_value if r.re else 0))
        self.outputs.append(("read", key, [self.widths[d] for d in r.data], r.n))

    def run(self, pc: int, key="cycles") -> None:
        self.beats.append(_header(KernelOp.RUN, arg=pc))
        self.outputs.append(("run", key, None, 1))

    def prng_set(self, seed: int) -> None:
        self.beats.append(_header(KernelOp.PRNG_SET, arg=seed))

    def prng_get(self, key="prng") -> None:
        self.beats.append(_header(KernelOp.PRNG_GET))
        self.outputs.append(("prng", key, None, 1))

    def clear_ranges(self) -> None:
        self.beats.append(_header(KernelOp.CLEAR_RANGES))

    def end(self) -> None:
        self.beats.append(_header(KernelOp.END))

    # ------------------------------------------------------------ buffers
    def command_bytes(self) -> np.ndarray:
        return _to_bytes(self.beats)

    def output_beats(self) -> int:
        return sum(n * (row_beats(w) if w else 1) for _, _, w, n in self.outputs)

    def results(self, out: np.ndarray) -> dict:
        """The output buffer -> {key: rows (tuples per data output) | cycles | state}."""
        beats = _from_bytes(out, self.output_beats())
        res, pos = {}, 0
        for kind, key, widths, n in self.outputs:
            if kind == "read":
                nb = row_beats(widths)
                rows = []
                for _ in range(n):
                    word = sum(b << (k * KERNEL_BEAT_BITS) for k, b in enumerate(beats[pos:pos + nb]))
                    pos += nb
                    vals, shift = [], 0
                    for w in widths:
                        vals.append((word >> shift) & ((1 << w) - 1))
                        shift += w
                    rows.append(tuple(vals))
                res[key] = rows
            else:
                res[key] = beats[pos] & ((1 << 64) - 1)
                pos += 1
        return res


def _to_bytes(beats: list[int]) -> np.ndarray:
    return np.frombuffer(b"".join(b.to_bytes(BEAT_BYTES, "little") for b in beats), dtype=np.uint8).copy()


def _from_bytes(buf: np.ndarray, n: int) -> list[int]:
    raw = np.asarray(buf, dtype=np.uint8).tobytes()
    if len(raw) < n * BEAT_BYTES:
        raise KernelIOError(f"output buffer holds {len(raw) // BEAT_BYTES} beats; the commands produce {n}")
    return [int.from_bytes(raw[k * BEAT_BYTES:(k + 1) * BEAT_BYTES], "little") for k in range(n)]
