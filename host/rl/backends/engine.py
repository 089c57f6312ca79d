"""What the `rtl` and `xrt` backends share: the golden backend's host side
(initial weights, hyper-parameter codes, Adam step-size schedules, the
parameters between runs) driving a training engine through
:mod:`fixar.driver.engine`'s writes and reads. A subclass supplies the transport,
:meth:`EngineBackend._transact`, which applies a list of operations to the
engine in order and returns what they read:

    ("write", [Write, ...]) | ("read", key, Read) | ("run", key, pc)
    | ("prng_set", seed) | ("prng_get", key) | ("clear_ranges",)

The weights live in the engine while it trains and are read back only for
checkpoints. Runs FXP32 and QAT (with config qat16d's 16-bit errors too), and
BFP with the array's BFP front (config bfp); FXP16 from scratch is the golden
backend's.
"""
from __future__ import annotations

import numpy as np

from fixar.compiler.program import ProgramError, step_scaled_errors
from fixar.config import FixarConfig
from fixar.driver.engine import EngineHost
from fixar.golden.fixed import dequantize
from fixar.rl.backends.golden import GoldenBackend, not_fitting
from fixar.rl.hyper import Hyper


class EngineBackend(GoldenBackend):
    name = "engine"

    def __init__(self, obs_dim: int, act_dim: int, hyper: Hyper, seed: int, cfg: FixarConfig | None = None):
        super().__init__(obs_dim, act_dim, hyper, seed, cfg)
        try:
            self.host = EngineHost(self.cfg, self.ddpg, act_dim, hyper.hidden, hyper.batch)
        except ProgramError as exc:     # the networks do not fit the engine: said as the golden backend says it
            raise not_fitting(self.cfg, hyper, exc) from None
        self.cycles = {"train": 0, "act": 0}
        self.train_steps = 0
        self._params_stale = False     # the host's copy of the parameters is behind the engine's
        self._loaded = False           # the engine holds the host's agent
        self._error_steps: list = []   # 16-bit errors: table writes for the next step

    # ------------------------------------------------------------ transport
    def _transact(self, ops: list[tuple]) -> dict:
        raise NotImplementedError

    def _do(self, ops: list[tuple]) -> dict:
        if not self._loaded:
            # the first operation loads the agent (a refused precision or a bad
            # checkpoint before it costs nothing)
            ops = [("clear_ranges",), ("write", self.host.setup_writes()), ("prng_set", self.host.prng_seed()),
                   *ops]
            self._loaded = True
        return self._transact(ops)

    # ------------------------------------------------------------ the interface
    def act(self, state: np.ndarray, explore: bool) -> np.ndarray:
        h = self.host
        ops = [("write", h.state_writes(self._q(state).reshape(-1, 1))), ("run", "act", h.act_pc),
               ("read", "action", h.action_read(explore))]
        explored = explore and bool(self.ddpg.noise_scale)
        # the acting program always draws noise: for a greedy action put the
        # generator back, as the golden model draws none
        ops.append(("prng_get", "prng") if explored else ("prng_set", int(self.ddpg.prng)))
        res = self._do(ops)
        self.cycles["act"] += res["act"]
        if explored:
            self.ddpg.prng = np.uint32(res["prng"])
        return dequantize(h.decode_action(res["action"]), self.cfg.pe.act32).astype(np.float32)

    def deploy_bfp(self, weights, biases, input_widths) -> None:
        """From now on act only, as the actor deployed in mixed BFP (issue 25):
        ``weights`` (codes: the host's BFP conversion of the actor's weights,
        fixar.haq.actor.BfpActor's) and ``biases`` replace the actor's, and each layer's
        input is converted in the array at ``input_widths[i]`` bits
        (:meth:`fixar.driver.engine.EngineHost.deploy_bfp`)."""
        if not self.cfg.bfp.in_array:
            raise ValueError(f"a deployed BFP actor on the {self.name} backend needs the array's BFP front: "
                             f"config {self.cfg.name} has none (bfp.in_array = false); use --config bfp")
        actor = self.ddpg.actor
        for what, given, own in (("weights", weights, actor.W), ("biases", biases, actor.b)):
            if [np.shape(x) for x in given] != [x.shape for x in own]:
                raise ValueError(f"deploy_bfp: {what} of shapes {[np.shape(x) for x in given]}, the actor's are "
                                 f"{[x.shape for x in own]}")
        self._sync_from_engine()
        self.host.deploy_bfp(input_widths)
        actor.W = [np.asarray(w, dtype=np.int64).copy() for w in weights]
        actor.b = [np.asarray(b, dtype=np.int64).copy() for b in biases]
        self._loaded = False     # the next operation loads the new program and weights

    def train(self, s, a, r, s2, done) -> dict:
        h = self.host
        if h.deployed is not None:
            raise ValueError(f"the {self.name} backend acts as a deployed BFP actor (deploy_bfp): it does not train")
        inputs = h.batch_tensors(self._q(s).T, self._q(a).T, self._q(r), self._q(s2).T, np.asarray(done) > 0.5)
        check = h.begin_bfp_step() if h.bfp_layers else False     # (before the step's seed bases are written)
        ops = [("write", self._error_steps + h.tensor_writes(inputs, self.hp.batch) + h.step_writes(h.step_sizes())),
               ("run", "train", 0)]
        ops += [("read", f"stat.{k}", r) for k, r in h.stats_reads().items()]
        bfp_reads = h.bfp_input_reads() if check else {}      # a BFP check step's inputs, for the schedule
        ops += [("read", f"bfp.{k}", r) for k, r in bfp_reads.items()]
        errors = step_scaled_errors(self.cfg) and h.quantizers is not None
        if errors:      # 16-bit errors: each step's error ranges, read with the statistics
            ops.append(("read", "ranges", h.range_read()))
        res = self._do(ops)
        # the errors' steps for the next step, written with its batch (no round trip of their own)
        self._error_steps = h.take_error_ranges(res["ranges"]) if errors else []
        if h.bfp_layers:      # a widened layer: the next step's (and acting's) program goes in now
            program = h.end_bfp_step({k: res[f"bfp.{k}"] for k in bfp_reads} if check else None)
            if program:
                self._do([("write", program)])
        self.cycles["train"] += res["train"]
        self.train_steps += 1
        self._params_stale = True
        q, y = (dequantize(h.decode_batch_row(res[f"stat.{k}"]), self.cfg.pe.act32) for k in ("q", "y"))
        return {"critic_loss": float(np.mean((q - y) ** 2)), "q_mean": float(np.mean(q))}

    def set_precision_phase(self, phase: str) -> None:
        if phase not in ("fxp32", "qat", "bfp"):
            raise ValueError(f"precision {phase!r}: the {self.name} backend runs fxp32, qat and bfp (FXP16 from "
                             "scratch is the golden backend's only)")
        if phase == "bfp" and not self.cfg.bfp.in_array:
            raise ValueError(f"precision bfp on the {self.name} backend needs the array's BFP front: config "
                             f"{self.cfg.name} has none (bfp.in_array = false); use --config bfp")
        if phase == "bfp":
            self.ddpg.use_bfp()
            self.host.phase_writes()
            return
        if phase == "qat" and self.cfg.array.qat_errors not in ("fxp32", "fxp16_delayed"):
            raise ValueError(f"config {self.cfg.name}: 16-bit backward errors (array.qat_errors = "
                             f"{self.cfg.array.qat_errors!r}) run on the golden backend only (the engine scales "
                             "them as \"fxp16_delayed\" does, config qat16d)")
        if phase == "qat":
            self.ddpg.enable_qat()      # the host tracks the networks' inputs, the engine the hidden layers'
            self.host.phase_writes()

    def switch_to_fxp16(self) -> None:
        ranges = self._do([("read", "ranges", self.host.range_read())])["ranges"]
        self._do([("write", self.host.switch_writes(ranges))])

    # ------------------------------------------------------------ checkpoints
    def _sync_from_engine(self) -> None:
        if self._params_stale:
            h = self.host
            reads = h.param_reads()
            ops = [("read", k, r) for k, r in reads.items()]
            tracking = h.quantizers is not None and not h.quantized
            if tracking:
                ops.append(("read", "ranges", h.range_read()))
            res = self._do(ops)
            h.store_params(*h.decode_params({k: res[k] for k in reads}))
            if tracking:
                h.merge_ranges(res["ranges"])
            self._params_stale = False

    def state_dict(self) -> dict[str, np.ndarray]:
        self._sync_from_engine()
        return super().state_dict()

    def load_state_dict(self, d: dict[str, np.ndarray]) -> None:
        super().load_state_dict(d)
        self._error_steps = []         # the checkpoint's errors' steps are in phase_writes' table
        try:
            writes = self.host.phase_writes()
        except ValueError as exc:
            raise ValueError(f"checkpoint: {exc}") from None
        if self._loaded:       # otherwise the first operation loads the host's (now restored) agent
            # the checkpoint's ranges live in the host's copy: the engine's trackers restart
            self._transact([("clear_ranges",), ("write", writes + self.host.param_writes()),
                            ("prng_set", self.host.prng_seed())])
        self._params_stale = False
