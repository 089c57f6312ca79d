"""The `rtl` backend: DDPG trained by the generated training engine
(``fixar_trainer``) simulated by Verilator, through the co-simulation link
(:mod:`fixar.sim.cosim`). The host side is the golden backend's: the same
initial weights, hyper-parameter codes and Adam step-size schedules, and the
same packing code (:mod:`fixar.driver.engine`) the benches use; the weights live in
the engine and are read back only for checkpoints. Same seed and settings
as `golden` give the same weights, bit for bit (tb/test_rtl_backend.py).

Slow by nature (a simulator, one Python request per memory row): meant for
verification runs of a few hundred steps on small networks and configs
(e.g. ``--config small --hidden 32,32 --batch 16``). Runs FXP32 and QAT
(ranges tracked by the engine, the switch, the quantizers at the array's
output stage); FXP16 from scratch is the golden backend's only.
"""
from __future__ import annotations

import atexit
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from fixar.config import FixarConfig
from fixar.rl.backends.base import BackendUnavailable
from fixar.rl.backends.engine import EngineBackend
from fixar.rl.hyper import Hyper

CONNECT_TIMEOUT_S = 3600   # a cold Verilator build of the default engine takes ~9 minutes on 2 cores


class RtlBackendError(BackendUnavailable):
    pass


class RtlBackend(EngineBackend):
    name = "rtl"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, cfg: FixarConfig | None = None,
                 log=print):
        super().__init__(obs_dim, act_dim, hyper, seed, cfg)
        self.log = log
        self._proc = None
        self._sock = None
        self._closed = False

    def _transact(self, ops: list[tuple]) -> dict:
        """One co-simulation request per operation, in order."""
        if self._sock is None:
            if self._closed:
                raise RtlBackendError("backend rtl: the simulator is not running (closed)")
            self._start()
        res = {}
        for op in ops:
            kind = op[0]
            if kind == "write":
                self._call("writes", op[1])
            elif kind == "read":
                res[op[1]] = self._call("reads", [op[2]])[0]
            elif kind == "run":
                res[op[1]] = self._call("run", op[2])
            elif kind == "prng_set":
                self._call("prng_set", op[1])
            elif kind == "prng_get":
                res[op[1]] = self._call("prng_get")
            elif kind == "clear_ranges":
                self._call("pulse", "rg_clear")
            else:
                raise ValueError(f"unknown engine operation {kind!r}")
        return res

    # ------------------------------------------------------------ the link
    def _start(self) -> None:
        from fixar.sim.runner import ToolError, check_simulator
        try:
            version = check_simulator("verilator")
        except ToolError as exc:
            raise RtlBackendError(f"backend rtl: {exc}") from None
        self._dir = Path(tempfile.mkdtemp(prefix="fixar-cosim-"))
        sock_path = self._dir / "engine.sock"
        (self._dir / "config.json").write_text(self.cfg.to_json())
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(sock_path))
        listener.listen(1)
        listener.settimeout(1.0)
        log_path = self._dir / "simulator.log"
        self.log(f"rtl backend: building and starting the training engine ({self.cfg.name} config, {version}); "
                 f"simulator log {log_path}")
        with open(log_path, "wb") as logf:
            self._proc = subprocess.Popen([sys.executable, "-m", "fixar.sim.cosim", str(sock_path),
                                           str(self._dir / "config.json")],
                                          stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.close)
        t0 = time.monotonic()
        while True:
            try:
                self._sock, _ = listener.accept()
                break
            except TimeoutError:
                if self._proc.poll() is not None:
                    # one line: the log's last line, and where the rest is
                    tail = (log_path.read_text(errors="replace").strip().splitlines() or ["(empty)"])[-1]
                    raise RtlBackendError(f"backend rtl: the simulator exited before connecting (its last line: "
                                          f"{tail.strip()}); see {log_path}") from None
                if time.monotonic() - t0 > CONNECT_TIMEOUT_S:
                    self.close()
                    raise RtlBackendError(f"backend rtl: no connection from the simulator in {CONNECT_TIMEOUT_S} s "
                                          f"(see {log_path})") from None
        listener.close()
        self._sock.settimeout(None)
        self.log(f"rtl backend: engine up after {time.monotonic() - t0:.0f} s")

    def _call(self, *req):
        from fixar.sim.cosim import recv, send
        try:
            send(self._sock, req)
            out = recv(self._sock)
        except (ConnectionError, OSError) as exc:
            raise RtlBackendError(f"backend rtl: lost the simulator ({exc}); see {self._dir / 'simulator.log'}") \
                from None
        if isinstance(out, Exception):
            raise RtlBackendError(f"backend rtl: the simulator refused {req[0]!r}: {out}")
        return out

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            try:
                self._call("quit")
            except RtlBackendError:
                pass
            self._sock.close()
            self._sock = None
        if self._proc is not None:
            try:
                rc = self._proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                rc = None
            self._proc = None
            if rc == 0:       # keep the simulator's log when it failed
                shutil.rmtree(self._dir, ignore_errors=True)
