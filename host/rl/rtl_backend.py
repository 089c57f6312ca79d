"""The `rtl` backend: DDPG trained by the generated training engine
(``fixar_trainer``) simulated by Verilator, through the co-simulation link
(:mod:`fixar.tb.cosim`). The host side is the golden backend's: the same
initial weights, hyper-parameter codes and Adam step-size schedules, and the
same packing code (:mod:`fixar.engine`) the benches use; the weights live in
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

import numpy as np

from fixar.config import FixarConfig
from fixar.engine import EngineHost
from fixar.golden.fixed import dequantize
from fixar.rl.backends import BackendUnavailable
from fixar.rl.golden_backend import GoldenBackend
from fixar.rl.hyper import Hyper

CONNECT_TIMEOUT_S = 3600   # a cold Verilator build of the default engine takes ~9 minutes on 2 cores


class RtlBackendError(BackendUnavailable):
    pass


class RtlBackend(GoldenBackend):
    name = "rtl"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, cfg: FixarConfig | None = None,
                 log=print):
        super().__init__(obs_dim, act_dim, hyper, seed, cfg)
        self.host = EngineHost(self.cfg, self.ddpg, act_dim, hyper.hidden, hyper.batch)   # ProgramError if it does not fit
        self.log = log
        self.cycles = {"train": 0, "act": 0}
        self.train_steps = 0
        self._proc = None
        self._sock = None
        self._closed = False
        self._params_stale = False     # host copy of the parameters behind the engine's

    def _ensure_started(self) -> None:
        """The simulator starts at the first request (a refused precision or
        a bad checkpoint costs no build), loaded with the host's agent."""
        if self._sock is not None:
            return
        if self._closed:
            raise RtlBackendError("backend rtl: the simulator is not running (closed)")
        self._start()
        self._call("writes", self.host.setup_writes())
        self._call("prng_set", self.host.prng_seed())

    # ------------------------------------------------------------ the link
    def _start(self) -> None:
        from fixar.tb.runner import ToolError, check_simulator
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
            self._proc = subprocess.Popen([sys.executable, "-m", "fixar.tb.cosim", str(sock_path),
                                           str(self._dir / "config.json")],
                                          stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        atexit.register(self.close)
        t0 = time.monotonic()
        while True:
            try:
                self._sock, _ = listener.accept()
                break
            except socket.timeout:
                if self._proc.poll() is not None:
                    tail = log_path.read_text(errors="replace").splitlines()[-15:]
                    raise RtlBackendError("backend rtl: the simulator exited before connecting; the end of "
                                          f"{log_path}:\n" + "\n".join(tail)) from None
                if time.monotonic() - t0 > CONNECT_TIMEOUT_S:
                    self.close()
                    raise RtlBackendError(f"backend rtl: no connection from the simulator in {CONNECT_TIMEOUT_S} s "
                                          f"(see {log_path})") from None
        listener.close()
        self._sock.settimeout(None)
        self.log(f"rtl backend: engine up after {time.monotonic() - t0:.0f} s")

    def _request(self, *req):
        self._ensure_started()
        return self._call(*req)

    def _call(self, *req):
        from fixar.tb.cosim import recv, send
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

    # ------------------------------------------------------------ the interface
    def act(self, state: np.ndarray, explore: bool) -> np.ndarray:
        s = self._q(state).reshape(-1, 1)
        self._request("writes", self.host.state_writes(s))
        self.cycles["act"] += self._request("run", self.host.act_pc)
        rows = self._request("reads", [self.host.action_read(explore)])[0]
        if explore and self.ddpg.noise_scale:
            self.ddpg.prng = np.uint32(self._request("prng_get"))
        else:
            # the acting program always draws noise: put the generator back, as
            # the golden model draws none for a greedy action
            self._request("prng_set", int(self.ddpg.prng))
        return dequantize(self.host.decode_action(rows), self.cfg.pe.act32).astype(np.float32)

    def train(self, s, a, r, s2, done) -> dict:
        h = self.host
        inputs = h.batch_tensors(self._q(s).T, self._q(a).T, self._q(r), self._q(s2).T, np.asarray(done) > 0.5)
        self._request("writes", h.tensor_writes(inputs, self.hp.batch) + h.step_writes(h.step_sizes()))
        self.cycles["train"] += self._request("run", 0)
        self.train_steps += 1
        self._params_stale = True
        reads = h.stats_reads()
        rows = self._request("reads", list(reads.values()))
        q, y = (dequantize(h.decode_batch_row(x), self.cfg.pe.act32) for x in rows)
        return {"critic_loss": float(np.mean((q - y) ** 2)), "q_mean": float(np.mean(q))}

    def set_precision_phase(self, phase: str) -> None:
        if phase not in ("fxp32", "qat"):
            raise ValueError(f"precision {phase!r}: the rtl backend runs fxp32 and qat (FXP16 from scratch is "
                             "the golden backend's only)")
        if phase == "qat":
            self.ddpg.enable_qat()      # the host tracks the networks' inputs, the engine the hidden layers'
            self.host.phase_writes()

    def switch_to_fxp16(self) -> None:
        ranges = self._request("reads", [self.host.range_read()])[0]
        self._request("writes", self.host.switch_writes(ranges))

    # ------------------------------------------------------------ checkpoints
    def _sync_from_engine(self) -> None:
        if self._params_stale:
            reads = self.host.param_reads()
            rows = self._request("reads", list(reads.values()))
            self.host.store_params(*self.host.decode_params(dict(zip(reads, rows))))
            if self.host.quantizers is not None and not self.host.quantized:
                self.host.merge_ranges(self._request("reads", [self.host.range_read()])[0])
            self._params_stale = False

    def state_dict(self) -> dict[str, np.ndarray]:
        self._sync_from_engine()
        return super().state_dict()

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        super().load_state_dict(d)
        try:
            writes = self.host.phase_writes()
        except ValueError as exc:
            raise ValueError(f"checkpoint: {exc}") from None
        if self._sock is not None:      # otherwise the first request loads the host's (now restored) agent
            self._call("pulse", "rg_clear")     # the checkpoint's ranges live in the host's copy
            self._call("writes", writes + self.host.param_writes())
            self._call("prng_set", self.host.prng_seed())
        self._params_stale = False

