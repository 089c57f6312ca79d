"""The U50 side of the `xrt` backend: a standalone helper that runs under the
Python XRT's pyxrt was built for and drives the kernel for the project's
Python 3.11 process, over its stdin and stdout.

Why a separate process: XRT builds pyxrt against its OS's Python (3.6 to 3.10
on the OSes XRT 2022.x supports) and the project needs 3.11, so the venv
cannot import pyxrt. This file therefore imports only the standard library
and pyxrt (which itself needs numpy: bo.read returns a numpy array), never
fixar, and keeps to Python 3.6 syntax and library (tests/test_xrt_host.py
parses it as 3.6 and 3.8). The host side is fixar.driver.xrt_link, which
shares the framing below by importing this module.

Messages, both ways: an 8-byte big-endian length of a JSON header, an 8-byte
length of a raw payload, the header, the payload (command and output buffers
travel as raw bytes). Requests, one reply each:

    {"op": "hello"}                                -> python, pyxrt, api
    {"op": "open", "device", "xclbin", "kernel"}   -> api, kernels
    {"op": "run", "n_cmd", "out_bytes", "timeout_ms"} + command bytes -> state + output bytes
    {"op": "quit"}

A reply is {"ok": true, ...} or {"ok": false, "kind": ..., "error": one line}.

The pyxrt calls are those of XRT 2022.1; the 2023.2 ones (register_xclbin,
hw_context) are used only where hasattr finds them. Sources, cited per call
below: XRT's src/python/pybind11/src/pyxrt.cpp ("pyxrt.cpp"; the copies
read are later than the 2022.1 tag, so every 2022.1 fact is also checked
against the next two), the pyxrt reference generated for the 2022.1 release
(xilinx.github.io/XRT/2022.1/html/pyxrt.html, "2022.1 pyxrt.html"), and
Vitis_Accel_Examples host_py/hello_world_py/src/host.py (the example its
2022.1 documentation describes: device(index), xclbin(path), load_xclbin,
kernel(..., kernel.shared), bo(..., group_id), sync, kernel(...) -> run).
"""
import json
import os
import struct
import sys
import time

PREFIX = struct.Struct(">QQ")     # header length, payload length
MAX_HEADER = 1 << 20              # a header is a small JSON object; more means the stream is out of step
MIN_BO_BYTES = 1 << 20            # buffers grow to what a run needs and are reused

# Final ert_cmd_state names that mean the run failed (XRT's pyxrt.cpp binds
# ert_cmd_state with these names; COMPLETED is success, TIMEOUT and the
# not-yet-final NEW/QUEUED/SUBMITTED/RUNNING mean "not finished").
FAILED_STATES = ("ERT_CMD_STATE_ERROR", "ERT_CMD_STATE_ABORT", "ERT_CMD_STATE_NORESPONSE",
                 "ERT_CMD_STATE_SKERROR", "ERT_CMD_STATE_SKCRASHED")


class ProtocolError(Exception):
    """The byte stream does not hold a well-formed message."""


class WorkerError(Exception):
    """A request failed for a reason the host reports as it is (``kind`` says which)."""

    def __init__(self, kind, message):
        Exception.__init__(self, message)
        self.kind = kind


# ------------------------------------------------------------------ framing
def encode(header, payload=b""):
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return PREFIX.pack(len(head), len(payload)) + head + bytes(payload)


def decode(read_exact):
    """The next (header, payload), or None at a clean end of stream.

    ``read_exact(n)`` returns exactly n bytes, or fewer only at the end of
    the stream; a stream that ends inside a message is a ProtocolError."""
    prefix = read_exact(PREFIX.size)
    if not prefix:
        return None
    if len(prefix) < PREFIX.size:
        raise ProtocolError("the stream ended inside a message's length prefix")
    n_head, n_payload = PREFIX.unpack(prefix)
    if n_head > MAX_HEADER:
        raise ProtocolError(f"a message header of {n_head} bytes: the stream is out of step")
    head = read_exact(n_head)
    payload = read_exact(n_payload) if n_payload else b""
    if len(head) < n_head or len(payload) < n_payload:
        raise ProtocolError("the stream ended inside a message")
    try:
        header = json.loads(head.decode("utf-8"))
    except ValueError:
        raise ProtocolError("a message header that is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("a message header that is not a JSON object")
    return header, payload


def reader(stream):
    """read_exact over a blocking binary stream (a pipe may return short reads)."""
    def read_exact(n):
        parts, got = [], 0
        while got < n:
            chunk = stream.read(n - got)
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)
    return read_exact


# ------------------------------------------------------------------ pyxrt
def state_name(state):
    """ert_cmd_state -> its name (pybind11 enums have .name; an unbound value falls back to str)."""
    name = getattr(state, "name", None)
    return str(name if name is not None else state).split(".")[-1]


def has_context_api(pyxrt, device):
    """XRT 2023.2's route (device.register_xclbin + pyxrt.hw_context); absent from 2022.1's pyxrt
    (xilinx.github.io/XRT/2022.1/html/pyxrt.html lists device: get_info, get_xclbin_uuid, load_xclbin)."""
    return hasattr(device, "register_xclbin") and hasattr(pyxrt, "hw_context")


def access_mode(pyxrt, name):
    """cu_access_mode.<name>: pyxrt.cpp binds the enum inside pyxrt.kernel with export_values(), so it
    reads pyxrt.kernel.shared (Vitis_Accel_Examples host_py/hello_world_py/src/host.py spells it so)."""
    mode = getattr(pyxrt.kernel, name, None)
    if mode is None:
        mode = getattr(getattr(pyxrt.kernel, "cu_access_mode", None), name, None)
    return mode


class Worker:
    """One device, one xclbin, one kernel; the requests' handlers."""

    def __init__(self):
        self.pyxrt = None
        self.device = None
        self.kernel = None
        self.bos = {}
        self.status_offset = None

    def handle(self, header, payload):
        op = header.get("op")
        if op == "hello":
            return self.hello(), b""
        if op == "open":
            offset = header.get("status_offset")
            self.status_offset = None if offset is None else int(offset)
            return self.open(int(header["device"]), str(header["xclbin"]), str(header["kernel"])), b""
        if op == "run":
            return self.run(payload, int(header["n_cmd"]), int(header["out_bytes"]), int(header["timeout_ms"]))
        if op == "quit":
            return {}, b""
        raise WorkerError("request", f"unknown request {op!r}")

    def hello(self):
        try:
            import pyxrt
        except ImportError as exc:
            raise WorkerError("no_pyxrt", str(exc)) from None
        try:
            import numpy  # noqa: F401  (pyxrt's bo.read returns a numpy array)
        except ImportError as exc:
            raise WorkerError("no_numpy", str(exc)) from None
        self.pyxrt = pyxrt
        return {"python": "{}.{}.{}".format(*sys.version_info[:3]), "executable": sys.executable,
                "pyxrt": getattr(pyxrt, "__file__", "?"),
                "api": "hw_context" if has_context_api(pyxrt, pyxrt.device) else "load_xclbin"}

    def open(self, index, path, name):
        pyxrt = self.pyxrt
        if pyxrt is None:
            raise WorkerError("request", "open before hello")
        try:
            device = pyxrt.device(index)           # pyxrt.cpp: device(unsigned int)
        except Exception as exc:
            raise WorkerError("device", one_line(exc)) from None
        try:
            image = pyxrt.xclbin(path)             # pyxrt.cpp: xclbin(const std::string& filename)
            kernels = [k.get_name() for k in image.get_kernels()]
        except Exception as exc:
            raise WorkerError("xclbin", one_line(exc)) from None
        if name not in kernels:
            raise WorkerError("xclbin", f"it holds no kernel {name} (it holds: {', '.join(kernels) or 'none'})")
        try:
            api, self.kernel = self._open_kernel(pyxrt, device, image, name)
        except Exception as exc:
            raise WorkerError("load", one_line(exc)) from None
        self.device, self.bos = device, {}
        return {"api": api, "kernels": kernels}

    @staticmethod
    def _open_kernel(pyxrt, device, image, name):
        if has_context_api(pyxrt, device):
            # XRT >= 2023.2 (pyxrt.cpp: register_xclbin(xclbin), hw_context(device, uuid), kernel(ctx, name))
            device.register_xclbin(image)
            context = pyxrt.hw_context(device, image.get_uuid())
            return "hw_context", pyxrt.kernel(context, name)
        # XRT 2022.1: load_xclbin returns the uuid (2022.1 pyxrt.html; hello_world_py/src/host.py), then
        # kernel(device, uuid, name, mode) (pyxrt.cpp's first kernel constructor)
        uuid = device.load_xclbin(image)
        # exclusive: XRT refuses read_register on a kernel opened shared ("Cannot read or write kernel with
        # shared access", XRT src/runtime_src/core/common/api/xrt_kernel.cpp), and the run's status
        # register is read after every run; this process is the card's only user while it trains
        mode = access_mode(pyxrt, "exclusive") or access_mode(pyxrt, "shared")
        if mode is None:       # the three-argument constructor opens the compute unit shared by default
            return "load_xclbin", pyxrt.kernel(device, uuid, name)
        return "load_xclbin", pyxrt.kernel(device, uuid, name, mode)

    def _bo(self, which, arg, nbytes):
        """A buffer in kernel argument ``arg``'s memory bank, grown on demand.
        pyxrt.cpp: bo(device, size, bo.flags, memory_group); kernel.group_id(argno)."""
        have = self.bos.get(which)
        if have is None or have[1] < nbytes:
            size = max(nbytes, MIN_BO_BYTES)
            bo = self.pyxrt.bo(self.device, size, self.pyxrt.bo.normal, self.kernel.group_id(arg))
            self.bos[which] = (bo, size)
        return self.bos[which][0]

    def run(self, command, n_cmd, out_bytes, timeout_ms):
        if self.kernel is None:
            raise WorkerError("request", "run before open")
        if timeout_ms < 1:     # XRT reads a 0 ms timeout as "block until done"
            raise WorkerError("request", "a run needs a timeout of at least 1 ms")
        pyxrt = self.pyxrt
        sync = pyxrt.xclBOSyncDirection
        cmd = self._bo("cmd", 0, len(command))
        out = self._bo("out", 1, out_bytes)
        # 2022.1 pyxrt.html: write(buffer, seek); sync(direction, size, offset) (the only sync there);
        # read(size, skip) -> numpy int8 array
        cmd.write(command, 0)
        cmd.sync(sync.XCL_BO_SYNC_BO_TO_DEVICE, len(command), 0)
        # pyxrt.cpp kernel.__call__: sets the arguments in order, starts the run and returns it
        run = self.kernel(cmd, out, n_cmd)
        state = wait(run, timeout_ms)
        out.sync(sync.XCL_BO_SYNC_BO_FROM_DEVICE, out_bytes, 0)
        data = memoryview(out.read(out_bytes, 0)).tobytes()
        reply = {"state": state}
        if self.status_offset is not None:
            # the kernel's status register (AXI error responses of this run); pyxrt.cpp: kernel.read_register
            try:
                reply["status"] = int(self.kernel.read_register(self.status_offset))
            except Exception as exc:
                reply["status_error"] = one_line(exc)
        return reply, data


def wait(run, timeout_ms):
    """Wait for a run, at most ``timeout_ms``; its final state's name, or WorkerError.

    pyxrt.cpp binds run.wait(timeout_ms) to xrt::run::wait, which returns the
    command state when the run completes or the time is up (xrt_kernel.h:
    "Command state upon return of wait"; 0 ms blocks). A pyxrt without the
    timeout overload blocks in wait(); the host's own deadline
    (fixar.driver.xrt_link) stops this process then."""
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        left = int((deadline - time.monotonic()) * 1000)
        if left < 1:
            raise WorkerError("timeout", f"the kernel did not finish within {timeout_ms} ms")
        try:
            state = run.wait(left)
        except TypeError:      # no wait(timeout_ms) overload: block, under the host's deadline
            state = run.wait()
        name = state_name(state)
        if name == "ERT_CMD_STATE_COMPLETED":
            return name
        if name in FAILED_STATES:
            raise WorkerError("kernel", f"the kernel run ended in state {name}")
        if name == "ERT_CMD_STATE_TIMEOUT":
            raise WorkerError("timeout", f"the kernel did not finish within {timeout_ms} ms")
        # NEW/QUEUED/SUBMITTED/RUNNING: wait() came back early; wait for the rest of the time


def one_line(exc):
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------ main
def serve(read_exact, write, worker):
    """Answer requests until quit or the end of the input."""
    while True:
        msg = decode(read_exact)
        if msg is None:
            return
        header, payload = msg
        try:
            reply, out = worker.handle(header, payload)
            reply = dict(reply, ok=True)
        except WorkerError as exc:
            reply, out = {"ok": False, "kind": exc.kind, "error": str(exc)}, b""
        except Exception as exc:     # pyxrt raises RuntimeError and friends: reported, the host decides
            reply, out = {"ok": False, "kind": "xrt", "error": one_line(exc)}, b""
        write(encode(reply, out))
        if header.get("op") == "quit":
            return


def main():
    # The protocol owns the original stdout; fd 1 then points at stderr, so
    # whatever XRT or a library prints cannot corrupt the message stream.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def write(data):
        out.write(data)
        out.flush()

    try:
        serve(reader(sys.stdin.buffer), write, Worker())
    except ProtocolError as exc:
        sys.stderr.write(f"fixar xrt worker: {exc}\n")
        return 3
    except BrokenPipeError:
        return 0                 # the host went away
    return 0


if __name__ == "__main__":
    sys.exit(main())
