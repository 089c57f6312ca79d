"""The xrt backend's host path, as far as it runs without XRT or a board
(issue 20): the helper (fixar.driver.xrt_worker) parses as the Python XRT
2022.x's OSes ship, its pipe protocol round-trips, and the helper driven end
to end under this venv's Python calls pyxrt as XRT 2022.1 (and, where they
exist, 2023.2's register_xclbin/hw_context) wants, in order; a missing
Python, a missing pyxrt, a hung kernel and the other failures are one clear
line each, from the backend and from `fixar train`.

pyxrt here is a stand-in written by this file (STAND_IN): it records every
call and checks argument shapes and the order the buffers must be synced
in. It verifies call sequences; it is not a simulator of XRT or the kernel
(its "kernel" copies the command buffer into the output buffer).
"""
from __future__ import annotations

import ast
import glob
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixar.config import KernelOp
from fixar.driver import xrt_worker
from fixar.driver.kernel_io import BEAT_BYTES, STATUS_OFFSET
from fixar.driver.xrt_link import PYTHON_ENV, XrtLink, XrtLinkError
from fixar.driver.xrt_worker import ProtocolError, decode, encode, reader
from fixar.rl.backends import BackendUnavailable, make_backend
from fixar.rl.hyper import Hyper

WORKER_SRC = Path(xrt_worker.__file__).read_text()
SMALL = Hyper(hidden=(16, 8), batch=8)
TINY = ["--config", "small", "--hidden", "16,8", "--batch", "8", "--steps", "200", "--warmup", "100"]

STAND_IN = '''"""Stand-in for XRT's pyxrt ({shape}-shaped API), written by tests/test_xrt_host.py.
It records each call to $FIXAR_PYXRT_LOG and checks argument shapes; it is not a simulator."""
import enum
import json
import os
import sys
import time

import numpy

SHAPE = "{shape}"
MODE = os.environ.get("FIXAR_PYXRT_MODE", "ok")
__file__ = "stand-in pyxrt " + SHAPE


def _log(name, *args):
    with open(os.environ["FIXAR_PYXRT_LOG"], "a") as f:
        f.write(json.dumps([name] + [str(a) for a in args]) + "\\n")


def _expect(cond, what):
    if not cond:
        raise TypeError("stand-in pyxrt " + SHAPE + ": " + what)


xclBOSyncDirection = enum.Enum("xclBOSyncDirection", "XCL_BO_SYNC_BO_TO_DEVICE XCL_BO_SYNC_BO_FROM_DEVICE")
ert_cmd_state = enum.Enum("ert_cmd_state", "ERT_CMD_STATE_NEW ERT_CMD_STATE_QUEUED ERT_CMD_STATE_COMPLETED "
                          "ERT_CMD_STATE_ERROR ERT_CMD_STATE_ABORT ERT_CMD_STATE_SUBMITTED ERT_CMD_STATE_TIMEOUT")


class uuid:
    def __init__(self, text):
        self.text = text

    def __str__(self):
        return "uuid"


class xclbin:
    class kernel_info:
        def __init__(self, name):
            self.name = name

        def get_name(self):
            return self.name

    def __init__(self, path):
        _log("xclbin", os.path.basename(path))
        with open(path, "rb") as f:
            if not f.read().startswith(b"xclbin2"):
                raise RuntimeError("Invalid xclbin file")
        self.names = os.environ.get("FIXAR_PYXRT_KERNELS", "fixar_kernel").split(",")

    def get_kernels(self):
        _log("xclbin.get_kernels")
        return [xclbin.kernel_info(n) for n in self.names]

    def get_uuid(self):
        _log("xclbin.get_uuid")
        return uuid("image")

    def __str__(self):
        return "xclbin"


class device:
    def __init__(self, index):
        _log("device", index)
        _expect(isinstance(index, int), "device(index: int)")
        if index != 0 or MODE == "no_device":
            raise RuntimeError("No such device, index " + str(index))
        self.loaded = None

    def load_xclbin(self, image):
        _log("device.load_xclbin", image)
        _expect(isinstance(image, (str, xclbin)), "load_xclbin(str | xclbin)")
        self.loaded = uuid("image")
        return self.loaded

    def __str__(self):
        return "device"


if SHAPE == "2023.2":
    def _register(self, image):
        _log("device.register_xclbin", image)
        _expect(isinstance(image, xclbin), "register_xclbin(xclbin)")
        self.loaded = uuid("image")
        return self.loaded

    device.register_xclbin = _register

    class hw_context:
        def __init__(self, dev, u):
            _log("hw_context", dev, u)
            _expect(isinstance(dev, device) and isinstance(u, uuid), "hw_context(device, uuid)")
            _expect(dev.loaded is not None, "hw_context of an xclbin that was not registered")
            self.device = dev

        def __str__(self):
            return "hw_context"


class bo:
    flags = enum.Enum("flags", "normal cacheable device_only host_only p2p svm")
    normal = flags.normal
    count = 0

    def __init__(self, dev, size, flags, group):
        bo.count += 1
        self.name = "bo" + str(bo.count)
        _log("bo", dev, size, flags, group)
        _expect(isinstance(dev, device) and isinstance(size, int) and size > 0 and flags is bo.normal
                and isinstance(group, int), "bo(device, size, bo.normal, group_id)")
        self.host = bytearray(size)
        self.device_copy = bytearray(size)

    def write(self, data, seek):
        view = memoryview(data).cast("B")
        _log("bo.write", self, len(view), seek)
        self.host[seek:seek + len(view)] = view

    def sync(self, *args):
        _log("bo.sync", self, *args)
        allowed = (3,) if SHAPE == "2022.1" else (1, 3)
        _expect(len(args) in allowed, "sync(direction, size, offset)")
        direction, size, offset = (args + (self.size(), 0))[:3]
        _expect(size + offset <= self.size(), "sync beyond the buffer")
        if direction is xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE:
            self.device_copy[offset:offset + size] = self.host[offset:offset + size]
        else:
            self.host[offset:offset + size] = self.device_copy[offset:offset + size]

    def read(self, size, skip):
        _log("bo.read", self, size, skip)
        data = bytes(self.host[skip:skip + size])
        if not hasattr(numpy, "frombuffer"):      # the empty numpy stub of an interpreter without numpy
            return data
        return numpy.frombuffer(data, dtype=numpy.int8).copy()     # what 2022.1's bo.read returns

    def size(self):
        return len(self.host)

    def __str__(self):
        return self.name


class run:
    def __init__(self):
        self.waits = 0

    def wait(self, *args):
        _log("run.wait", *args)
        self.waits += 1
        if MODE == "no_wait_timeout" and args:
            raise TypeError("wait(): incompatible function arguments")
        _expect(len(args) <= 1 and all(isinstance(a, int) and a > 0 for a in args), "wait([timeout_ms > 0])")
        if MODE == "crash":
            sys.stderr.write("stand-in: crashing on purpose\\n")
            sys.stderr.flush()
            os._exit(7)
        if MODE == "hang":
            time.sleep(3600)
        if MODE == "timeout":
            time.sleep(args[0] / 1000.0)
            return ert_cmd_state.ERT_CMD_STATE_TIMEOUT
        if MODE == "error":
            return ert_cmd_state.ERT_CMD_STATE_ERROR
        if MODE == "early" and self.waits == 1:
            return ert_cmd_state.ERT_CMD_STATE_QUEUED
        return ert_cmd_state.ERT_CMD_STATE_COMPLETED


class kernel:
    cu_access_mode = enum.Enum("cu_access_mode", "exclusive shared none")
    exclusive, shared, none = cu_access_mode.exclusive, cu_access_mode.shared, cu_access_mode.none

    def __init__(self, *args):
        _log("kernel", *args)
        self.mode = args[3] if len(args) == 4 else kernel.cu_access_mode.shared
        if SHAPE == "2023.2" and len(args) == 2:
            _expect(isinstance(args[0], hw_context) and isinstance(args[1], str), "kernel(hw_context, name)")
        else:
            _expect(len(args) in (3, 4) and isinstance(args[0], device) and isinstance(args[1], uuid)
                    and isinstance(args[2], str) and (len(args) == 3 or args[3] in kernel.cu_access_mode),
                    "kernel(device, uuid, name[, cu_access_mode])")
            _expect(args[0].loaded is not None, "kernel of an xclbin that was not loaded")

    def group_id(self, argno):
        _log("kernel.group_id", argno)
        return 10 + argno

    def read_register(self, offset):
        _log("kernel.read_register", offset)
        # XRT refuses register access on a kernel opened shared (xrt_kernel.cpp)
        if SHAPE != "2023.2" and self.mode is not kernel.cu_access_mode.exclusive:
            raise RuntimeError("Cannot read or write kernel with shared access")
        return int(os.environ.get("FIXAR_PYXRT_STATUS", "0"), 0)

    def __call__(self, *args):
        _log("kernel.__call__", *args)
        _expect(len(args) == 3 and isinstance(args[0], bo) and isinstance(args[1], bo) and isinstance(args[2], int),
                "kernel(cmd bo, out bo, n_cmd)")
        cmd, out, n_cmd = args
        data = bytes(cmd.device_copy[:n_cmd * 64])      # what the kernel would read: the device's copy
        out.device_copy[:] = (data * (len(out.device_copy) // max(len(data), 1) + 1))[:len(out.device_copy)]
        return run()
'''


# ------------------------------------------------------------------ helpers
def stand_in(tmp_path: Path, shape: str, mode: str = "ok", numpy_stub: bool = False, **extra) -> dict:
    """An environment whose Python imports the stand-in pyxrt of ``shape`` (and, for an interpreter
    without numpy, an empty numpy module: the helper only checks that numpy imports)."""
    folder = tmp_path / f"pyxrt-{shape}"
    folder.mkdir(exist_ok=True)
    (folder / "pyxrt.py").write_text(STAND_IN.replace("{shape}", shape))
    if numpy_stub:
        (folder / "numpy.py").write_text('"""Empty stand-in for numpy (tests/test_xrt_host.py)."""\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIXAR_", "PYTHONPATH"))}
    env.update(PYTHONPATH=str(folder), FIXAR_PYXRT_LOG=str(tmp_path / "calls.jsonl"), FIXAR_PYXRT_MODE=mode, **extra)
    return env


def calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def xclbin(tmp_path: Path) -> Path:
    image = tmp_path / "fixar.xclbin"
    image.write_bytes(b"xclbin2\0stand-in image")
    return image


def commands(n_beats: int) -> bytes:
    return bytes((7 * i + 3) % 256 for i in range(n_beats * BEAT_BYTES))


@pytest.fixture
def links():
    made = []
    yield made
    for link in made:
        link.close()
        shutil.rmtree(link.log_path.parent, ignore_errors=True)     # kept by a failed helper; not needed here


def open_link(links, tmp_path, shape, mode="ok", margin_s=30.0, **extra) -> XrtLink:
    link = XrtLink(sys.executable, env=stand_in(tmp_path, shape, mode, **extra), reply_margin_s=margin_s)
    links.append(link)
    link.open(0, str(xclbin(tmp_path)), "fixar_kernel", status_offset=STATUS_OFFSET)
    return link


# ------------------------------------------------------------------ the helper's source
@pytest.mark.parametrize("version", [(3, 6), (3, 8)])
def test_worker_parses_as_the_python_of_xrt_2022_oses(version):
    ast.parse(WORKER_SRC, feature_version=version)


def test_worker_imports_only_the_standard_library_and_pyxrt():
    names = set()
    for node in ast.walk(ast.parse(WORKER_SRC)):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add((node.module or "").split(".")[0] if node.level == 0 else ".")
    assert names <= {"json", "os", "struct", "sys", "time", "pyxrt", "numpy"}, names
    assert "annotations" not in WORKER_SRC       # no `from __future__ import annotations` (3.7+), no 3.9+ hints


# ------------------------------------------------------------------ the protocol
def test_messages_round_trip_through_a_stream():
    sent = [({"op": "run", "n_cmd": 3, "timeout_ms": 30000}, bytes(range(256)) * 5),
            ({"ok": True, "text": "caf\u00e9 \u2013 \u00fc"}, b""),
            ({}, b"\x00"),
            ({"nested": {"a": [1, 2.5, None, False]}}, b"\xff" * 70000)]
    stream = io.BytesIO(b"".join(encode(h, p) for h, p in sent))
    read = reader(stream)
    got = []
    while (msg := decode(read)) is not None:
        got.append(msg)
    assert got == sent


@pytest.mark.parametrize("damage", ["truncated_payload", "truncated_prefix", "huge_header", "not_json", "not_object"])
def test_a_damaged_stream_is_a_protocol_error(damage):
    good = encode({"op": "hello"}, b"abc")
    data = {"truncated_payload": good[:-1], "truncated_prefix": good[:5],
            "huge_header": xrt_worker.PREFIX.pack(1 << 40, 0),
            "not_json": xrt_worker.PREFIX.pack(3, 0) + b"{x}",
            "not_object": xrt_worker.PREFIX.pack(2, 0) + b"[]"}[damage]
    with pytest.raises(ProtocolError):
        decode(reader(io.BytesIO(data)))


# ------------------------------------------------------------------ end to end, XRT 2022.1 and 2023.2
def names(log: list[list[str]]) -> list[str]:
    return [c[0] for c in log]


RUN_CALLS = ["bo.write", "bo.sync", "kernel.__call__", "run.wait", "bo.sync", "bo.read", "kernel.read_register"]


def test_xrt_2022_1_calls_in_order(tmp_path, links):
    link = open_link(links, tmp_path, "2022.1")
    assert link.info["api"] == "load_xclbin"
    cmd = commands(5)
    out = link.run(cmd, 5, 3 * BEAT_BYTES, timeout_s=30)
    assert out == cmd[:3 * BEAT_BYTES]     # went down, through the kernel's buffers, and back
    log = calls(tmp_path)
    assert names(log) == ["device", "xclbin", "xclbin.get_kernels", "device.load_xclbin", "kernel",
                          "kernel.group_id", "bo", "kernel.group_id", "bo", *RUN_CALLS]
    assert log[3] == ["device.load_xclbin", "xclbin"]
    assert log[4] == ["kernel", "device", "uuid", "fixar_kernel", "cu_access_mode.exclusive"]
    assert log[5:9] == [["kernel.group_id", "0"], ["bo", "device", str(1 << 20), "flags.normal", "10"],
                        ["kernel.group_id", "1"], ["bo", "device", str(1 << 20), "flags.normal", "11"]]
    write, to_dev, call, wait, from_dev, read, status = log[9:]
    assert status == ["kernel.read_register", str(STATUS_OFFSET)] and link.last_status == 0
    assert write == ["bo.write", "bo1", str(len(cmd)), "0"]
    assert to_dev == ["bo.sync", "bo1", "xclBOSyncDirection.XCL_BO_SYNC_BO_TO_DEVICE", str(len(cmd)), "0"]
    assert call == ["kernel.__call__", "bo1", "bo2", "5"]
    assert wait[0] == "run.wait" and 0 < int(wait[1]) <= 30_000
    assert from_dev == ["bo.sync", "bo2", "xclBOSyncDirection.XCL_BO_SYNC_BO_FROM_DEVICE", str(3 * BEAT_BYTES), "0"]
    assert read == ["bo.read", "bo2", str(3 * BEAT_BYTES), "0"]
    assert not any(c[0] in ("device.register_xclbin", "hw_context") for c in log)


def interpreter(version: str) -> str | None:
    """A Python of ``version`` on this machine (on PATH or under pyenv), or None."""
    major, minor = map(int, version.split("."))
    found = [shutil.which(f"python{version}"),
             *sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")))]
    check = f"import sys; sys.exit(sys.version_info[:2] != ({major}, {minor}))"
    for exe in filter(None, found):
        if subprocess.run([exe, "-c", check], capture_output=True).returncode == 0:
            return exe
    return None


@pytest.mark.parametrize("version", ["3.6", "3.8", "3.10"])
def test_the_helper_runs_under_the_pythons_of_xrt_2022_oses(tmp_path, links, version):
    """Ubuntu 18.04 / RHEL 8 (3.6), Ubuntu 20.04 (3.8), Ubuntu 22.04 (3.10), where this machine has them."""
    exe = interpreter(version)
    if exe is None:
        pytest.skip(f"no Python {version} here")
    link = XrtLink(exe, env=stand_in(tmp_path, "2022.1", numpy_stub=True))
    links.append(link)
    assert link.info["python"].startswith(f"{version}.") and link.info["api"] == "load_xclbin"
    link.open(0, str(xclbin(tmp_path)), "fixar_kernel", status_offset=STATUS_OFFSET)
    cmd = commands(4)
    assert link.run(cmd, 4, 2 * BEAT_BYTES, timeout_s=30) == cmd[:2 * BEAT_BYTES]
    assert names(calls(tmp_path))[-len(RUN_CALLS):] == RUN_CALLS


def test_xrt_2023_2_uses_its_context_api_where_it_exists(tmp_path, links):
    link = open_link(links, tmp_path, "2023.2")
    assert link.info["api"] == "hw_context"
    cmd = commands(2)
    assert link.run(cmd, 2, BEAT_BYTES, timeout_s=30) == cmd[:BEAT_BYTES]
    log = calls(tmp_path)
    assert names(log) == ["device", "xclbin", "xclbin.get_kernels", "device.register_xclbin", "xclbin.get_uuid",
                          "hw_context", "kernel", "kernel.group_id", "bo", "kernel.group_id", "bo", *RUN_CALLS]
    assert log[5] == ["hw_context", "device", "uuid"]
    assert log[6] == ["kernel", "hw_context", "fixar_kernel"]
    assert "device.load_xclbin" not in names(log)


def test_buffers_are_reused_and_grown_only_when_a_run_needs_more(tmp_path, links):
    link = open_link(links, tmp_path, "2022.1")
    link.run(commands(2), 2, BEAT_BYTES, timeout_s=30)
    link.run(commands(3), 3, BEAT_BYTES, timeout_s=30)
    assert names(calls(tmp_path)).count("bo") == 2
    big = (1 << 20) // BEAT_BYTES + 1
    assert link.run(commands(big), big, BEAT_BYTES, timeout_s=30) == commands(big)[:BEAT_BYTES]
    grown = [c for c in calls(tmp_path) if c[0] == "bo"]
    assert len(grown) == 3 and grown[-1][2] == str(big * BEAT_BYTES) and grown[-1][4] == "10"


def test_a_wait_that_returns_before_the_end_is_waited_again(tmp_path, links):
    link = open_link(links, tmp_path, "2022.1", mode="early")
    link.run(commands(1), 1, BEAT_BYTES, timeout_s=30)
    assert names(calls(tmp_path)).count("run.wait") == 2


def test_a_pyxrt_without_wait_timeout_falls_back_to_a_blocking_wait(tmp_path, links):
    link = open_link(links, tmp_path, "2022.1", mode="no_wait_timeout")
    link.run(commands(1), 1, BEAT_BYTES, timeout_s=30)
    waits = [c for c in calls(tmp_path) if c[0] == "run.wait"]
    assert len(waits) == 2 and len(waits[0]) == 2 and waits[1] == ["run.wait"]


def test_the_backend_runs_its_command_buffer_through_the_helper(tmp_path, monkeypatch):
    for k, v in stand_in(tmp_path, "2022.1").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(PYTHON_ENV, sys.executable)
    lines = []
    backend = make_backend("xrt", 3, 1, SMALL, 0, config="small", xclbin=str(xclbin(tmp_path)), log=lines.append)
    try:
        # the stand-in's kernel echoes the command buffer: the first output beat is PRNG_GET's header
        assert backend._transact([("prng_get", "prng")]) == {"prng": int(KernelOp.PRNG_GET)}
    finally:
        backend.close()
    assert "load_xclbin API" in lines[0] and sys.executable in lines[0]
    call = next(c for c in calls(tmp_path) if c[0] == "kernel.__call__")
    assert call[3] == "2"                  # PRNG_GET and END
    with pytest.raises(BackendUnavailable, match="closed"):
        backend._transact([("prng_get", "prng")])


def test_an_axi_error_in_the_status_register_stops_training_with_its_reason(tmp_path, monkeypatch):
    """The kernel's status register is read after every run: SLVERR on a
    write of the output buffer (status 0x203) is one line naming it, and the
    link is closed (the run's results are not used)."""
    for k, v in stand_in(tmp_path, "2022.1", FIXAR_PYXRT_STATUS="0x203").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(PYTHON_ENV, sys.executable)
    backend = make_backend("xrt", 3, 1, SMALL, 0, config="small", xclbin=str(xclbin(tmp_path)), log=lambda _: None)
    try:
        with pytest.raises(BackendUnavailable) as exc:
            backend._transact([("prng_get", "prng")])
        assert "write of the output buffer got SLVERR" in one_line(exc.value)
        assert backend.link is None
    finally:
        backend.close()


def test_an_unreadable_status_register_is_a_warning_not_silence(tmp_path, monkeypatch):
    """2023.2's hw_context kernels: if the register cannot be read, the
    backend says so once and goes on."""
    for k, v in stand_in(tmp_path, "2023.2", FIXAR_PYXRT_STATUS="bad").items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv(PYTHON_ENV, sys.executable)
    lines = []
    backend = make_backend("xrt", 3, 1, SMALL, 0, config="small", xclbin=str(xclbin(tmp_path)), log=lines.append)
    try:
        for _ in range(2):
            backend._transact([("prng_get", "prng")])
    finally:
        backend.close()
    warned = [line for line in lines if "status register cannot be read" in line]
    assert len(warned) == 1


# ------------------------------------------------------------------ failures: one clear line each
def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def test_a_missing_python_is_one_line(monkeypatch):
    with pytest.raises(XrtLinkError, match=r"^/nonexistent/python3 is not an executable Python") as exc:
        XrtLink("/nonexistent/python3")
    assert exc.value.kind == "no_python"
    monkeypatch.setenv(PYTHON_ENV, "/nonexistent/python3.8")
    with pytest.raises(XrtLinkError, match=rf"{PYTHON_ENV}=/nonexistent/python3.8 is not an executable") as exc:
        XrtLink()
    one_line(exc.value)


def test_the_default_python_is_the_os_one_else_one_outside_the_venv(monkeypatch, tmp_path):
    from fixar.driver import xrt_link
    other = tmp_path / "bin"
    other.mkdir()
    (other / "python3").symlink_to(sys.executable)
    monkeypatch.delenv(PYTHON_ENV, raising=False)
    monkeypatch.setattr(xrt_link, "SYSTEM_PYTHON", str(other / "python3"))
    assert xrt_link.find_python() == str(other / "python3")
    monkeypatch.setattr(xrt_link, "SYSTEM_PYTHON", str(tmp_path / "no-such-python3"))
    if sys.prefix == sys.base_prefix:
        pytest.skip("not running in a virtual environment")
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.prefix, "bin")), str(other)]))
    assert xrt_link.find_python() == str(other / "python3")       # the venv's own python3 is passed over
    monkeypatch.setenv("PATH", str(Path(sys.prefix, "bin")))
    with pytest.raises(XrtLinkError, match="no python3 on PATH outside this virtual environment") as exc:
        xrt_link.find_python()
    assert exc.value.kind == "no_python"


def test_a_python_without_pyxrt_is_one_line(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    with pytest.raises(XrtLinkError, match=r"pyxrt \(XRT's Python bindings\) is not importable by ") as exc:
        XrtLink(sys.executable, env=env)
    assert exc.value.kind == "no_pyxrt" and "setup.sh" in one_line(exc.value)


def test_a_kernel_that_does_not_finish_in_time_is_one_line(tmp_path, links):
    link = open_link(links, tmp_path, "2022.1", mode="timeout")
    with pytest.raises(XrtLinkError, match="the kernel did not finish within 200 ms") as exc:
        link.run(commands(1), 1, BEAT_BYTES, timeout_s=0.2)
    assert exc.value.kind == "timeout"
    one_line(exc.value)


def test_a_helper_stuck_inside_xrt_is_stopped_at_the_deadline(tmp_path, links):
    link = open_link(links, tmp_path, "2022.1", mode="hang", margin_s=0.5)
    proc = link._proc
    with pytest.raises(XrtLinkError, match=r"did not answer 'run' within 0.7 s and was stopped") as exc:
        link.run(commands(1), 1, BEAT_BYTES, timeout_s=0.2)
    one_line(exc.value)
    assert proc.poll() is not None
    with pytest.raises(XrtLinkError, match="not running"):
        link.run(commands(1), 1, BEAT_BYTES, timeout_s=0.2)


@pytest.mark.parametrize("mode, kind, needle", [
    ("error", "kernel", "the kernel run ended in state ERT_CMD_STATE_ERROR"),
    ("crash", "died", "exited (code 7; its last line: stand-in: crashing on purpose)"),
])
def test_a_failed_run_is_one_line(tmp_path, links, mode, kind, needle):
    link = open_link(links, tmp_path, "2022.1", mode=mode)
    with pytest.raises(XrtLinkError) as exc:
        link.run(commands(1), 1, BEAT_BYTES, timeout_s=30)
    assert exc.value.kind == kind and needle in one_line(exc.value)


def test_a_missing_device_or_kernel_is_one_line(tmp_path, links):
    link = XrtLink(sys.executable, env=stand_in(tmp_path, "2022.1"))
    links.append(link)
    with pytest.raises(XrtLinkError, match="No such device, index 3") as exc:
        link.open(3, str(xclbin(tmp_path)), "fixar_kernel")
    assert exc.value.kind == "device"
    link = XrtLink(sys.executable, env=stand_in(tmp_path, "2022.1", FIXAR_PYXRT_KERNELS="vadd,vmul"))
    links.append(link)
    with pytest.raises(XrtLinkError, match=r"holds no kernel fixar_kernel \(it holds: vadd, vmul\)") as exc:
        link.open(0, str(xclbin(tmp_path)), "fixar_kernel", status_offset=STATUS_OFFSET)
    assert exc.value.kind == "xclbin"


def test_the_timeout_setting_is_checked(monkeypatch, tmp_path):
    monkeypatch.setenv("FIXAR_XRT_TIMEOUT_S", "soon")
    image = xclbin(tmp_path)
    with pytest.raises(BackendUnavailable, match="FIXAR_XRT_TIMEOUT_S='soon' is not a number"):
        make_backend("xrt", 3, 1, SMALL, 0, config="small", xclbin=str(image))
    from fixar.rl.backends.xrt import run_timeout
    monkeypatch.setenv("FIXAR_XRT_TIMEOUT_S", "2.5")
    assert run_timeout(None) == 2.5 and run_timeout(4) == 4.0
    with pytest.raises(BackendUnavailable, match="must be > 0 s"):
        run_timeout(0)


# ------------------------------------------------------------------ the same through `fixar train`
def train(tmp_path: Path, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "fixar.cli", "train", "--backend", "xrt", "--xclbin", str(xclbin(tmp_path)), *TINY,
           "--out", str(tmp_path / "run")]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def error_line(res: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, (res.returncode, res.stderr)
    return lines[0]


@pytest.mark.parametrize("case", ["no_python", "no_pyxrt", "no_device"])
def test_fixar_train_reports_each_as_one_error_line(tmp_path, case):
    env = stand_in(tmp_path, "2022.1", mode="no_device")
    env[PYTHON_ENV] = sys.executable
    if case == "no_python":
        env[PYTHON_ENV] = "/nonexistent/python3"
        needle = f"{PYTHON_ENV}=/nonexistent/python3 is not an executable"
    elif case == "no_pyxrt":
        del env["PYTHONPATH"]
        needle = "pyxrt (XRT's Python bindings) is not importable by"
    else:
        needle = "cannot open device 0: RuntimeError: No such device, index 0 (is a U50 installed"
    line = error_line(train(tmp_path, env))
    assert line.startswith("error: backend xrt: ") and needle in line, line
    assert not (tmp_path / "run").exists()
