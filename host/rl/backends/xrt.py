"""The `xrt` backend: DDPG trained on the Alveo U50 (the kernel built by
`make bitstream`), through XRT's Python bindings (pyxrt).

Each backend call is one kernel run: its operations (fixar.driver.engine writes,
reads, program runs) are packed into a command buffer by fixar.driver.kernel_io,
the same code the kernel's cocotb bench verifies against the simulated
kernel (tb/kernel_bench.py); the buffer goes to HBM, the kernel executes it
and writes what it read to the output buffer, which comes back and is
parsed. The host side is the golden backend's, as for `rtl`.

pyxrt is built for the OS's Python (3.6 to 3.10 with XRT 2022.x), not this
project's 3.11, so the pyxrt calls run in a helper process under that Python
(fixar.driver.xrt_worker, started and spoken to by fixar.driver.xrt_link).
Which Python: ``python=`` or ``FIXAR_XRT_PYTHON``, else python3 outside the
venv. Every run has a deadline (``timeout_s=`` or ``FIXAR_XRT_TIMEOUT_S``,
default 30 s). Not run on this project's machines (no board, no XRT):
without that Python, pyxrt, a device or the xclbin it fails with one line
naming what is missing.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fixar.config import FixarConfig
from fixar.driver.kernel_io import BEAT_BYTES, STATUS_OFFSET, CommandBuffer, KernelRunError, check_status
from fixar.driver.xrt_link import XrtLink, XrtLinkError
from fixar.rl.backends.base import BackendUnavailable
from fixar.rl.backends.engine import EngineBackend
from fixar.rl.hyper import Hyper

KERNEL = "fixar_kernel"
TIMEOUT_ENV = "FIXAR_XRT_TIMEOUT_S"
RUN_TIMEOUT_S = 30.0       # one run moves a few MB and computes for milliseconds; far longer is a hung kernel


class XrtBackendError(BackendUnavailable):
    pass


def run_timeout(timeout_s: float | None) -> float:
    """The kernel-run deadline: the option, else FIXAR_XRT_TIMEOUT_S, else RUN_TIMEOUT_S."""
    if timeout_s is None:
        text = os.environ.get(TIMEOUT_ENV)
        if not text:
            return RUN_TIMEOUT_S
        try:
            timeout_s = float(text)
        except ValueError:
            raise XrtBackendError(f"backend xrt: {TIMEOUT_ENV}={text!r} is not a number of seconds") from None
    if not timeout_s > 0:
        raise XrtBackendError(f"backend xrt: a kernel-run timeout must be > 0 s, got {timeout_s:g}")
    return float(timeout_s)


class XrtBackend(EngineBackend):
    name = "xrt"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, cfg: FixarConfig | None = None,
                 xclbin: str | None = None, device: int = 0, log=print, python: str | None = None,
                 timeout_s: float | None = None):
        if not xclbin:
            raise XrtBackendError("backend xrt: needs --xclbin (the image `make bitstream` writes: "
                                  "build/u50/fixar.xclbin)")
        if not Path(xclbin).is_file():
            raise XrtBackendError(f"backend xrt: no xclbin at {xclbin} (run `make bitstream`)")
        self.timeout_s = run_timeout(timeout_s)
        super().__init__(obs_dim, act_dim, hyper, seed, cfg)
        self.log = log
        self.link = None
        self._status_warned = False
        try:
            self.link = XrtLink(python)
            info = self.link.info
            opened = self.link.open(device, xclbin, KERNEL, status_offset=STATUS_OFFSET)
        except XrtLinkError as exc:
            self.close()
            raise XrtBackendError(f"backend xrt: {_with_context(exc, device, xclbin)}") from None
        log(f"xrt backend: {KERNEL} from {xclbin} on device {device} (pyxrt under {self.link.python}, Python "
            f"{info['python']}, {opened['api']} API; kernel-run timeout {self.timeout_s:g} s)")

    def _transact(self, ops: list[tuple]) -> dict:
        """All operations in one kernel run."""
        cb = CommandBuffer(self.cfg)
        for op in ops:
            kind = op[0]
            if kind == "write":
                cb.writes(op[1])
            elif kind == "read":
                cb.read(op[2], op[1])
            elif kind == "run":
                cb.run(op[2], op[1])
            elif kind == "prng_set":
                cb.prng_set(op[1])
            elif kind == "prng_get":
                cb.prng_get(op[1])
            elif kind == "clear_ranges":
                cb.clear_ranges()
            else:
                raise ValueError(f"unknown engine operation {kind!r}")
        cb.end()
        n_out = max(cb.output_beats(), 1) * BEAT_BYTES
        if self.link is None:
            raise XrtBackendError("backend xrt: the board link is closed")
        try:
            out = self.link.run(cb.command_bytes().tobytes(), len(cb.beats), n_out, self.timeout_s)
        except XrtLinkError as exc:
            self.close()       # after a hung or failed run the kernel's state is unknown: no further runs
            raise XrtBackendError(f"backend xrt: {exc}") from None
        self._check_status()
        return cb.results(np.frombuffer(out, dtype=np.uint8))

    def _check_status(self) -> None:
        """The kernel's status register after the run: an AXI error response
        (a bad buffer address, a bank the kernel cannot reach) makes the run's
        results invalid, so training stops with the reason."""
        status, why = self.link.last_status, self.link.last_status_error
        if status is None:
            if not self._status_warned:
                self._status_warned = True
                self.log(f"xrt backend: warning: the kernel's status register cannot be read ({why}); "
                          "AXI error responses of its runs go unreported")
            return
        try:
            check_status(status)
        except KernelRunError as exc:
            self.close()
            raise XrtBackendError(f"backend xrt: {exc}") from None

    def close(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()


def _with_context(exc: XrtLinkError, device: int, xclbin: str) -> str:
    """The helper's reason, with what it was doing and what to check."""
    if exc.kind == "device":
        return f"cannot open device {device}: {exc} (is a U50 installed and visible? `xbutil examine`)"
    if exc.kind == "xclbin":
        return f"cannot read the xclbin {xclbin}: {exc} (rebuild it with `make bitstream`)"
    if exc.kind == "load":
        return (f"cannot load {xclbin} on device {device}: {exc} (is the card's platform "
                "xilinx_u50_gen3x16_xdma_5_202210_1? `xbutil examine`)")
    return str(exc)
