"""The `xrt` backend: DDPG trained on the Alveo U50 (the kernel built by
`make bitstream`), through XRT's Python bindings (pyxrt).

Each backend call is one kernel run: its operations (fixar.driver.engine writes,
reads, program runs) are packed into a command buffer by fixar.driver.kernel_io,
the same code the kernel's cocotb bench verifies against the simulated
kernel (tb/kernel_bench.py); the buffer goes to HBM, the kernel executes it
and writes what it read to the output buffer, which comes back and is
parsed. The host side is the golden backend's, as for `rtl`.

Not run on this project's machines (no board, no XRT): written as a user
with XRT 2022.x and a U50 runs it; without pyxrt, a device or the xclbin it
fails with a message naming what is missing.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fixar.config import FixarConfig
from fixar.driver.kernel_io import BEAT_BYTES, CommandBuffer
from fixar.rl.backends.base import BackendUnavailable
from fixar.rl.backends.engine import EngineBackend
from fixar.rl.hyper import Hyper

KERNEL = "fixar_kernel"


class XrtBackendError(BackendUnavailable):
    pass


def _pyxrt():
    try:
        import pyxrt
    except ImportError:
        raise XrtBackendError("backend xrt: pyxrt (XRT's Python bindings) is not importable; install XRT 2022.x, "
                              "`source /opt/xilinx/xrt/setup.sh`, and run on a machine with the U50") from None
    return pyxrt


class XrtBackend(EngineBackend):
    name = "xrt"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, cfg: FixarConfig | None = None,
                 xclbin: str | None = None, device: int = 0, log=print):
        if not xclbin:
            raise XrtBackendError("backend xrt: needs --xclbin (the image `make bitstream` writes: "
                                  "build/u50/fixar.xclbin)")
        if not Path(xclbin).is_file():
            raise XrtBackendError(f"backend xrt: no xclbin at {xclbin} (run `make bitstream`)")
        super().__init__(obs_dim, act_dim, hyper, seed, cfg)
        pyxrt = _pyxrt()
        self.pyxrt, self.log = pyxrt, log
        try:
            self.device = pyxrt.device(device)
        except RuntimeError as exc:
            raise XrtBackendError(f"backend xrt: cannot open device {device}: {exc} (is a U50 installed? `xbutil "
                                  "examine`)") from None
        image = pyxrt.xclbin(str(xclbin))
        self.device.register_xclbin(image)
        self.context = pyxrt.hw_context(self.device, image.get_uuid())
        self.kernel = pyxrt.kernel(self.context, KERNEL)
        self._bos: dict[str, tuple] = {}
        log(f"xrt backend: {KERNEL} from {xclbin} on device {device}")

    def _bo(self, which: str, arg: int, nbytes: int):
        """A buffer object in the memory bank of kernel argument ``arg``, grown on demand."""
        have = self._bos.get(which)
        if have is None or have[1] < nbytes:
            size = max(nbytes, 1 << 20)
            bo = self.pyxrt.bo(self.device, size, self.pyxrt.bo.normal, self.kernel.group_id(arg))
            self._bos[which] = (bo, size)
        return self._bos[which][0]

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
        sync = self.pyxrt.xclBOSyncDirection
        data = cb.command_bytes()
        n_out = max(cb.output_beats(), 1) * BEAT_BYTES
        cmd, out = self._bo("cmd", 0, len(data)), self._bo("out", 1, n_out)
        cmd.write(data, 0)
        cmd.sync(sync.XCL_BO_SYNC_BO_TO_DEVICE, len(data), 0)
        run = self.kernel(cmd, out, len(cb.beats))
        state = run.wait()
        if state != self.pyxrt.ert_cmd_state.ERT_CMD_STATE_COMPLETED:
            raise XrtBackendError(f"backend xrt: the kernel run ended in state {state}")
        out.sync(sync.XCL_BO_SYNC_BO_FROM_DEVICE, n_out, 0)
        return cb.results(np.frombuffer(out.read(n_out, 0), dtype=np.uint8))
