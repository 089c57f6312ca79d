"""The host's end of the XRT helper (:mod:`fixar.driver.xrt_worker`): finds the
Python XRT's pyxrt was built for, starts the helper under it, and turns
kernel runs into request/reply messages over its pipes, each with a
deadline, so that a hung kernel, a hung XRT call or a dead helper is one
clear :class:`XrtLinkError`, never a hang or a traceback.

Which Python: ``python=`` (the backend's option), else ``FIXAR_XRT_PYTHON``,
else ``/usr/bin/python3`` (the OS's, which XRT's packages build pyxrt for),
else the first ``python3`` on PATH outside this process's virtual
environment. It must import pyxrt (``source
/opt/xilinx/xrt/setup.sh`` puts XRT's python folder on PYTHONPATH, which the
helper inherits) and numpy.
"""
from __future__ import annotations

import atexit
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fixar.driver import xrt_worker
from fixar.driver.xrt_worker import decode, encode

WORKER = Path(xrt_worker.__file__).resolve()
PYTHON_ENV = "FIXAR_XRT_PYTHON"
SYSTEM_PYTHON = "/usr/bin/python3"   # XRT's deb and rpm packages build pyxrt for the OS's own Python
HELLO_TIMEOUT_S = 60.0       # starting Python and importing pyxrt (XRT's libraries)
OPEN_TIMEOUT_S = 300.0       # opening the device and downloading the xclbin
REPLY_MARGIN_S = 60.0        # a run's reply may come this long after the kernel's own timeout (buffer syncs)
QUIT_TIMEOUT_S = 10.0


class XrtLinkError(RuntimeError):
    """The helper cannot be started, refused a request or stopped answering;
    ``kind`` names the cause (no_python, no_pyxrt, no_numpy, device, xclbin,
    load, timeout, kernel, died, xrt)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def find_python(explicit: str | None = None) -> str:
    """The interpreter to run the helper under (see the module's docstring)."""
    choice = explicit or os.environ.get(PYTHON_ENV)
    if choice:
        found = shutil.which(choice)
        if found is None:
            named = choice if explicit else f"{PYTHON_ENV}={choice}"
            raise XrtLinkError("no_python", f"{named} is not an executable Python; give the Python XRT's pyxrt "
                                            "was built for (e.g. /usr/bin/python3)")
        return found
    if os.access(SYSTEM_PYTHON, os.X_OK):
        return SYSTEM_PYTHON
    venv_bin = Path(sys.prefix, "bin").resolve() if sys.prefix != sys.base_prefix else None
    for entry in os.environ.get("PATH", "").split(os.pathsep):
        if entry and (venv_bin is None or Path(entry).resolve() != venv_bin):
            found = shutil.which("python3", path=entry)
            if found:
                return found
    raise XrtLinkError("no_python", f"no {SYSTEM_PYTHON} and no python3 on PATH outside this virtual environment; "
                                    f"set {PYTHON_ENV} to the Python XRT's pyxrt was built for")


class XrtLink:
    """One helper process driving one kernel on one device."""

    def __init__(self, python: str | None = None, env: dict | None = None, reply_margin_s: float = REPLY_MARGIN_S):
        self.python = find_python(python)
        self.reply_margin_s = reply_margin_s
        self.last_status: int | None = None
        self.last_status_error: str | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="fixar-xrt-"))
        self.log_path = self._dir / "xrt_helper.log"
        try:
            with open(self.log_path, "wb") as log:
                # -B: no bytecode next to the package for another Python's version
                self._proc = subprocess.Popen([self.python, "-B", str(WORKER)], stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, stderr=log, env=env, start_new_session=True)
        except OSError as exc:
            raise XrtLinkError("no_python", f"cannot start {self.python}: {exc.strerror or exc}") from None
        atexit.register(self.close)
        self.info = self._hello()

    # ------------------------------------------------------------ requests
    def _hello(self) -> dict:
        try:
            return self.call({"op": "hello"}, timeout_s=HELLO_TIMEOUT_S)[0]
        except XrtLinkError as exc:
            self.close()
            if exc.kind == "no_pyxrt":
                raise XrtLinkError("no_pyxrt", f"pyxrt (XRT's Python bindings) is not importable by {self.python} "
                                               f"({exc}); install XRT 2022.1, `source /opt/xilinx/xrt/setup.sh`, "
                                               f"or set {PYTHON_ENV} to the Python XRT's pyxrt was built for") \
                    from None
            if exc.kind == "no_numpy":
                raise XrtLinkError("no_numpy", f"numpy is not importable by {self.python} ({exc}); pyxrt needs it "
                                               "(e.g. `apt install python3-numpy`)") from None
            raise

    def open(self, device: int, xclbin: str, kernel: str, status_offset: int | None = None) -> dict:
        """Open the device, load the xclbin, open the kernel; with ``status_offset`` every run
        also reads that register of the kernel (:attr:`last_status`)."""
        return self.call({"op": "open", "device": device, "xclbin": str(Path(xclbin).resolve()), "kernel": kernel,
                          "status_offset": status_offset}, timeout_s=OPEN_TIMEOUT_S)[0]

    def run(self, command: bytes, n_cmd: int, out_bytes: int, timeout_s: float) -> bytes:
        """One kernel run: the command buffer in, ``out_bytes`` of the output buffer back."""
        header = {"op": "run", "n_cmd": n_cmd, "out_bytes": out_bytes, "timeout_ms": max(1, round(timeout_s * 1000))}
        reply, data = self.call(header, command, timeout_s=timeout_s + self.reply_margin_s)
        # the status register after this run (None: not asked for, or unreadable: status_error says why)
        self.last_status, self.last_status_error = reply.get("status"), reply.get("status_error")
        return data

    def call(self, header: dict, payload: bytes = b"", timeout_s: float = OPEN_TIMEOUT_S) -> tuple[dict, bytes]:
        if self._proc is None:
            raise XrtLinkError("died", "the XRT helper is not running (closed after an earlier error)")
        deadline = time.monotonic() + timeout_s
        try:
            self._proc.stdin.write(encode(header, payload))
            self._proc.stdin.flush()
            msg = decode(lambda n: self._read_exact(n, deadline, header["op"], timeout_s))
        except (BrokenPipeError, xrt_worker.ProtocolError):
            msg = None
        if msg is None:
            raise self._died()
        reply, data = msg
        if not reply.get("ok"):
            raise XrtLinkError(reply.get("kind", "xrt"), reply.get("error", "no reason given"))
        return reply, data

    def _read_exact(self, n: int, deadline: float, op: str, timeout_s: float) -> bytes:
        fd, parts, got = self._proc.stdout.fileno(), [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                self._stop()
                raise XrtLinkError("timeout", f"the XRT helper did not answer {op!r} within {timeout_s:g} s and was "
                                              f"stopped (a hung kernel or XRT call; `xbutil examine`, "
                                              f"`xbutil reset --device BDF`; log {self.log_path})")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                break                 # the helper exited: decode sees the short read
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)

    def _died(self) -> XrtLinkError:
        try:
            rc = self._proc.wait(timeout=QUIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            rc = None
        self._stop()
        lines = self.log_path.read_text(errors="replace").strip().splitlines() if self.log_path.exists() else []
        last = lines[-1].strip() if lines else "(nothing)"
        return XrtLinkError("died", f"the XRT helper ({self.python}) exited (code {rc}; its last line: {last}); "
                                    f"log {self.log_path}")

    # ------------------------------------------------------------ shutdown
    def _stop(self) -> None:
        """Kill the helper's process group (it may be stuck inside XRT)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass

    def close(self) -> None:
        """Ask the helper to quit; kill it if it does not; keep its log only if it failed."""
        proc = self._proc
        if proc is None:
            return
        clean = False
        if proc.poll() is None:
            try:
                self.call({"op": "quit"}, timeout_s=QUIT_TIMEOUT_S)
                clean = proc.wait(timeout=QUIT_TIMEOUT_S) == 0
            except (XrtLinkError, subprocess.TimeoutExpired):
                pass
        self._stop()
        if clean:
            shutil.rmtree(self._dir, ignore_errors=True)
