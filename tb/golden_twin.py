"""The golden model's side of a bench that trains on the engine (test_engine
on its host ports, test_kernel through AXI): the same DDPG agent
packed by the host's code (fixar.driver.engine), the same compiled program run by
the golden executor, random batches and states drawn in one fixed order, and
the comparison of what the engine read back with the golden state.

Keeping this in one place means both benches feed the engine exactly the
same steps and judge it by exactly the same rules."""
from __future__ import annotations

import dataclasses

import numpy as np

from fixar.compiler.bfp_step import bfp_scalars
from fixar.compiler.execute import ProgramState, execute
from fixar.config import FixarConfig
from fixar.driver.engine import EngineHost, Write
from fixar.golden.fixed import quantize
from fixar.rl.backends.golden import GoldenBackend
from fixar.rl.hyper import Hyper

AGENT_SEED = 11


class GoldenTwin:
    def __init__(self, cfg: FixarConfig, nets, qat: bool, seed: int, fuse_soft: bool = True, bfp: bool = False,
                 bfp_fixed: int | None = None):
        obs, act, hidden, batch = nets
        self.cfg, self.obs, self.act, self.batch = cfg, obs, act, batch
        hp = dataclasses.replace(Hyper(), hidden=tuple(hidden), batch=batch)
        self.ddpg = GoldenBackend(obs, act, hp, seed=AGENT_SEED, cfg=cfg).ddpg
        if qat:
            self.ddpg.enable_qat()
        if bfp:
            self.ddpg.use_bfp(bfp_fixed)   # the schedule's state is the host's, shared with the golden program
        self.checking = False          # a BFP step that checks the schedule (the host reads the inputs back)
        self.host = EngineHost(cfg, self.ddpg, act, tuple(hidden), batch, fuse_soft)   # the backends' packing
        self.st = ProgramState(cfg, self.host.prog, batch)                  # the golden model, same program
        for name, value in self.host.params().items():
            self.st.t[name] = value
        self.st.prng = self.host.prng_seed()
        self.rng = np.random.default_rng(seed)
        self.fmt = cfg.pe.act32
        self.state_scale = 1.0     # the states' standard deviation (a bench may widen phase 2's)

    def switch_writes(self, ranges) -> list[Write]:
        """The QAT switch from the engine's range trackers: the host's writes
        (quantizer table, phase-2 program), and the golden state handed over
        to the phase-2 program (parameters, moments, noise state kept)."""
        writes = self.host.switch_writes(ranges)
        old = self.st
        self.st = ProgramState(self.cfg, self.host.prog, self.batch)
        self.st.t.update({name: old.t[name] for name in self.host.params()})
        self.st.m, self.st.v, self.st.prng, self.st.quant = old.m, old.v, old.prng, self.host.quantizer_table()
        return writes

    def train_writes(self) -> list[Write]:
        """A random batch: the golden step runs on it; returns the writes that
        give the engine the same batch and step sizes."""
        obs, act, batch, fmt, rng = self.obs, self.act, self.batch, self.fmt, self.rng
        S = quantize(rng.normal(size=(obs, batch)) * self.state_scale, fmt)
        A = quantize(rng.uniform(-1, 1, (act, batch)), fmt)
        R = quantize(rng.normal(size=(batch,)), fmt)
        S2 = quantize(rng.normal(size=(obs, batch)) * self.state_scale, fmt)
        done = rng.random(batch) < 0.2
        lr = self.host.step_sizes()
        inputs = self.host.batch_tensors(S, A, R, S2, done)
        for name, X in inputs.items():
            self.st.write(name, X)
        d, layers = self.ddpg, self.host.bfp_layers
        self.checking = self.host.begin_bfp_step() if layers else False
        execute(self.st, {"gamma": d.gamma, "tau": d.tau, "loss_scale": d.loss_scale,
                          "critic_lr": lr["critic"], "actor_lr": lr["actor"],
                          **(bfp_scalars(layers) if layers else {})}, d.adam)
        return self.host.tensor_writes(inputs, batch) + self.host.step_writes(lr)

    def bfp_input_mismatches(self, got: dict) -> list[str]:
        """A BFP check step's training inputs read back (host.bfp_input_reads() keys) against golden's."""
        return [f"BFP input {name}" for name, rows in got.items()
                if not np.array_equal(self.host.decode_activations(name, rows), self.st.t[name])]

    def end_bfp_step(self, got: dict | None) -> list[Write]:
        """After a BFP step: the host's schedule (on the inputs read back, a
        check step's), and the next step's program for both sides if a layer widened."""
        writes = self.host.end_bfp_step(got)
        self.st.program = self.host.prog
        return writes

    def act_writes(self) -> list[Write]:
        """A random state: the golden acting program runs on it; returns the
        engine's state writes."""
        state = quantize(self.rng.normal(size=(self.obs, 1)), self.fmt)
        self.st.write("state", self.host.seen_input("actor", state))
        layers = self.host.bfp_layers
        execute(self.st, {"noise": self.ddpg.noise_scale, **(bfp_scalars(layers) if layers else {})}, None,
                acting=True)
        return self.host.state_writes(state)

    def param_mismatches(self, got: dict, log=None) -> list[str]:
        """Names of the parameters (and their Adam moments) whose read-back
        rows ``got`` (keys of host.param_reads()) differ from the golden state."""
        st, bad = self.st, []
        params, moments = self.host.decode_params(got)
        for name, value in params.items():
            want = st.t[name]
            if not np.array_equal(value, want):
                bad.append(name)
                if log:
                    idx = np.argwhere(value != want)
                    log.error("%s: %d of %d differ, first at %s: expected %d got %d", name, len(idx), want.size,
                              tuple(idx[0]), want[tuple(idx[0])], value[tuple(idx[0])])
            if name in moments:
                m, v = moments[name]
                if not (np.array_equal(m, st.m[name]) and np.array_equal(v, st.v[name])):
                    bad.append(f"{name} moments")
        return bad

    def stat_mismatches(self, got: dict) -> list[str]:
        """The training statistics (q, y) read back, by host.stats_reads() key."""
        prog = self.host.prog
        return [f"statistic {key}" for key, rows in got.items()
                if not np.array_equal(self.host.decode_batch_row(rows), self.st.t[prog.outputs[key]][0])]

    def error_writes(self, rows) -> list[Write]:
        """After a step with 16-bit errors: the host takes each hidden error's
        range from the engine's trackers (rows as host.range_read() reads
        them) for the next step's steps, and so does the golden program."""
        writes = self.host.take_error_ranges(rows)
        if self.host.quantized:
            self.st.quant = self.host.quantizer_table()
        return writes

    def error_range_mismatch(self, rows) -> bool:
        """Whether the engine's hidden-error trackers differ from golden's."""
        got, mine = self.host.decode_ranges(rows), self.ranges()
        return any(got[i] != mine[i] for i, _, _ in self.host.error_entries())

    def ranges(self) -> list[tuple[int, int]]:
        """The golden program's range trackers, (lo, hi) per table entry."""
        return list(zip(self.st.lo, self.st.hi))

    def range_mismatch(self, rows) -> bool:
        """Whether the engine's range trackers (QAT phase 1) differ from golden's."""
        return self.host.decode_ranges(rows) != self.ranges()

    def action(self, explore: bool) -> np.ndarray:
        key = "action" if explore else "mu"
        return self.st.t[self.host.prog.act_outputs[key]][:self.act, 0]
