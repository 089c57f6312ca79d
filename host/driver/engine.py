"""The host's side of the training engine (module ``fixar_trainer``): what
it writes into the engine's memories and registers to set up an agent, to
train on a batch and to act on a state, and how it decodes what it reads
back. Everything is plain data (:class:`Write`, :class:`Read`), so the cocotb
bench, the `rtl` backend's co-simulation and the U50 kernel's buffers all
use the same packing code.

The agent's host-side state (hyper-parameter codes, Adam step-size schedules,
the parameters between runs) is a :class:`fixar.golden.ddpg.FixedDDPG`; the
engine holds the live copy while it trains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fixar.compiler.array_ops import (
    bias_image,
    feature_major_image,
    packed_slot_major_image,
    pair_image,
    slot_major_image,
    weight_from_image,
    weight_image,
)
from fixar.compiler.bfp_step import begin_bfp_step, bfp_scalars, bfp_widths, checking, finish_bfp_step, may_check
from fixar.compiler.execute import bfp_seed_key
from fixar.compiler.program import (
    BFP_NETS,
    ERROR_KEYS,
    Program,
    compile_ddpg,
    encode,
    error_index,
    quantizer_index,
    step_scaled_errors,
)
from fixar.config import FixarConfig, Scalar, packed_code_offset, quantizer_widths
from fixar.golden.bfp_train import BfpLayers
from fixar.golden.fixed import I64
from fixar.golden.qat import LayerQuantizers, StepScaledErrors, tanh_limit


@dataclass(frozen=True)
class Write:
    """Rows into one host write port: ``<port>_we`` = ``we`` (a core or bank
    mask), ``<port>_addr`` = base + i, one word per data input in ``data``."""

    port: str
    base: int
    words: tuple
    we: int = 1
    data: tuple[str, ...] = ("data",)


@dataclass(frozen=True)
class Read:
    """Rows through a registered read port (data the cycle after the address)."""

    addr: str
    data: tuple[str, ...]
    base: int
    n: int
    re: str | None = None
    re_value: int = 1          # read enable: a core mask on the activation memory


def unpack_words(rows, n: int, bits: int, signed: bool = True) -> np.ndarray:
    """Integers of ``n`` packed ``bits``-wide fields -> flat codes."""
    mask = (1 << bits) - 1
    v = np.array([[(r >> (c * bits)) & mask for c in range(n)] for r in rows], dtype=I64).ravel()
    return np.where(v >> (bits - 1), v - (1 << bits), v) if signed else v


def quantizer_words(cfg: FixarConfig, delta: int, zero: int) -> tuple[int, int, int, int]:
    """(Delta, z, magic, shift) of one entry of the array's quantizer table.
    The output stage computes floor(u / Delta) as (u * magic) >> shift for
    u < 2^nb (config.quantizer_widths): with l = ceil(log2 Delta), shift = nb + l and magic =
    ceil(2^shift / Delta), exact for all such u (Granlund and Montgomery,
    "Division by invariant integers using multiplication", 1994, thm. 4.2)."""
    nb = quantizer_widths(cfg)["nb"]
    if not 1 <= delta <= 1 << cfg.pe.out.bits:
        raise ValueError(f"quantizer scale Delta = {delta}: must be in [1, 2^{cfg.pe.out.bits}]")
    l_ = (delta - 1).bit_length()
    shift = nb + l_
    return delta, zero, -(-(1 << shift) // delta), shift


def _pad_first_layer(W: np.ndarray, shape: tuple[int, int], obs: int) -> np.ndarray:
    """The critic's first weight matrix with zero columns where s is padded
    to whole tiles (a's columns move to the action tile)."""
    if W.shape == shape:
        return W.copy()
    Wp = np.zeros(shape, dtype=I64)
    Wp[:, :obs], Wp[:, shape[1] - (W.shape[1] - obs):] = W[:, :obs], W[:, obs:]
    return Wp


def _unpad_first_layer(Wp: np.ndarray, shape: tuple[int, int], obs: int) -> np.ndarray:
    if Wp.shape == shape:
        return Wp
    n_act = shape[1] - obs
    return np.hstack([Wp[:, :obs], Wp[:, Wp.shape[1] - n_act:]])


def deployed_bfp_widths(input_widths) -> dict[str, list[tuple[int, int]]]:
    """compile_ddpg's ``bfp`` for a deployed actor: weights used as stored,
    inputs at ``input_widths``; the critic (never run) unconverted."""
    return {"actor": [(0, m) for m in input_widths], "critic": [(0, 0)] * len(input_widths)}


class EngineHost:
    """One DDPG agent (``ddpg``: its host-side state) on a training engine of config ``cfg``."""

    PARAM_NETS = ("actor", "critic", "actor_t", "critic_t")

    def __init__(self, cfg: FixarConfig, ddpg, act_dim: int, hidden: tuple[int, ...], batch: int,
                 fuse_soft: bool = True, packed: bool | None = None):
        # packed: QAT's phase 2 in packed products (docs/program.md, "Packed phase 2");
        # None: where the config's quantizer steps are powers of two (config qat_pow2)
        # and the batch splits into whole pairs on every core
        if packed is None:
            packed = cfg.array.quantizer_scale == "pow2" and batch % (2 * cfg.array.cores) == 0
        self.cfg, self.ddpg, self.batch, self.fuse_soft, self.packed = cfg, ddpg, batch, fuse_soft, packed
        self.obs_dim, self.act_dim, self.hidden = ddpg.obs_dim, act_dim, tuple(hidden)
        self.deployed: tuple[int, ...] | None = None     # a deployed BFP actor's input widths (deploy_bfp)
        self.deployed_acts = 0                            # its acting passes so far: the seed bases
        self._compile()

    def _compile(self) -> None:
        """The program of the agent's phase: FXP32 (QAT phase 1 tracks ranges
        on the way), or QAT phase 2 (quantizers at the output stage)."""
        layers = self.bfp_layers
        self.prog: Program = compile_ddpg(self.cfg, self.obs_dim, self.act_dim, self.hidden, self.batch,
                                          quantized=self.quantized, tops=self.quantizer_tops(),
                                          tanh_limit=tanh_limit(self.quantizers["critic"], 0) if self.quantized
                                          else None, fuse_soft=self.fuse_soft,
                                          packed=self.packed and self.quantized,
                                          quantizers=self.quantizer_table() if self.quantized else None,
                                          bfp=bfp_widths(layers) if layers else self._deployed_widths(),
                                          bfp_check=bool(layers) and may_check(layers))
        self.words, self.act_pc = encode(self.cfg, self.prog, self.batch)

    def _deployed_widths(self) -> dict[str, list[tuple[int, int]]] | None:
        return None if self.deployed is None else deployed_bfp_widths(self.deployed)

    # ------------------------------------------------------------ QAT
    @property
    def quantizers(self) -> dict[str, LayerQuantizers] | None:
        qat = self.ddpg.qat
        if qat is None or self.bfp_layers is not None:
            return None
        if not all(isinstance(qat.get(net), LayerQuantizers) for net in ("actor", "critic")):
            raise ValueError("the training engine runs FXP32, QAT and BFP; FXP16 from scratch is golden-only")
        errors = [q for key, q in qat.items() if key not in ("actor", "critic")]
        if errors and not (step_scaled_errors(self.cfg) and all(isinstance(q, StepScaledErrors) for q in errors)):
            raise ValueError(f"config {self.cfg.name}: 16-bit backward errors scaled as array.qat_errors = "
                             f"{self.cfg.array.qat_errors!r} run on the golden backend only (the engine's are "
                             "\"fxp16_delayed\": config qat16d)")
        return qat

    # ------------------------------------------------------------ BFP
    @property
    def bfp_layers(self) -> dict[str, BfpLayers] | None:
        """The networks' BFP state (widths, seeds, the schedule) when the agent trains in BFP."""
        qat = self.ddpg.qat
        return qat if qat is not None and isinstance(qat.get("actor"), BfpLayers) else None

    def bfp_base_writes(self) -> list[Write]:
        """The seed streams' bases of the next step (or of acting, which uses
        them without using them up): scalar BFP_BASES, the actor's low."""
        layers = self.bfp_layers
        if layers is None:
            return []
        bases = bfp_scalars(layers)
        word = sum(bases[bfp_seed_key(i)] << (32 * i) for i in range(len(BFP_NETS)))
        return [Write("scal", int(Scalar.BFP_BASES), (word,))]

    def deploy_bfp(self, input_widths) -> None:
        """Act as a network deployed in mixed BFP (issue 25's policies,
        fixar.haq.actor.BfpActor): each actor layer's weights are used as the
        engine holds them (the host converted them to BFP once, as a deployed
        network is stored) and its input is converted in the array at
        ``input_widths[i]`` bits. Acting pass c converts layer i's input with
        seed jenkins32(c x 2L + 2i + 1), L the actor's layers: the program's
        place 2i + 1 on base c x 2L. For acting only: the training program
        is compiled beside it but must not run (the critic stays FXP32, and
        nothing would convert the actor's weights)."""
        widths = tuple(int(m) for m in input_widths)
        if len(widths) != len(self.hidden) + 1:
            raise ValueError(f"a deployed actor needs one input width per layer ({len(self.hidden) + 1}), "
                             f"got {list(widths)}")
        if self.bfp_layers is not None or self.quantizers is not None:
            raise ValueError("deploy_bfp: the agent trains in BFP or QAT; a deployed actor starts from FXP32 "
                             "parameters")
        self.deployed, self.deployed_acts = widths, 0
        self._compile()

    def _deployed_base_writes(self) -> list[Write]:
        """The next acting pass's seed base (the actor's stream; the critic's is unused)."""
        base = (self.deployed_acts * 2 * (len(self.hidden) + 1)) & 0xFFFFFFFF
        self.deployed_acts += 1
        return [Write("scal", int(Scalar.BFP_BASES), (base,))]

    def begin_bfp_step(self) -> bool:
        """Before a BFP training step: whether it is a check step (the host
        then reads the training inputs back after it: :meth:`bfp_input_reads`)."""
        begin_bfp_step(self.bfp_layers)
        return checking(self.bfp_layers)

    def bfp_input_reads(self) -> dict[str, Read]:
        """The training forward passes' layer inputs of a BFP program, every core's rows."""
        T, every = self.prog.tensors, (1 << self.cfg.array.cores) - 1
        names = {t for ts in self.prog.bfp_inputs.values() for t in ts}
        return {t: Read("am_addr", ("am_rdata",), T[t].base, T[t].rows, re="am_re", re_value=every) for t in names}

    def decode_activations(self, name: str, rows) -> np.ndarray:
        """An FXP32 activation tensor read from every core -> features x batch."""
        return self._slot_major(rows, math.ceil(self.prog.tensors[name].shape[0] / self.cfg.array.rows))

    def _slot_major(self, rows, tiles: int) -> np.ndarray:
        """Rows read from every core's activation memory, slot-major (the row
        of feature tile kt and slot s holds its R features) -> (tiles R) x batch."""
        cfg = self.cfg
        R, N, bits = cfg.array.rows, cfg.array.cores, cfg.pe.act32.bits
        S = self.batch // N
        out = np.zeros((tiles * R, self.batch), dtype=I64)
        for n in range(N):
            for kt in range(tiles):
                for s in range(S):
                    word = (rows[kt * S + s][0] >> (n * R * bits)) & ((1 << (R * bits)) - 1)
                    out[kt * R:(kt + 1) * R, n * S + s] = unpack_words([word], R, bits)
        return out

    def end_bfp_step(self, got: dict | None) -> list[Write]:
        """After a BFP training step: count its conversions and, on a check
        step, measure the schedule on the inputs read back (``got``: rows by
        :meth:`bfp_input_reads` key). A layer that widened compiles the next
        step's program: returns its write (none otherwise)."""
        tensors = {} if got is None else {name: self.decode_activations(name, rows) for name, rows in got.items()}
        if not finish_bfp_step(self.prog, tensors.__getitem__, self.bfp_layers, self.obs_dim, self.cfg.array.rows):
            return []
        self._compile()
        return [Write("prog", 0, tuple(self.words))]

    @property
    def quantized(self) -> bool:
        q = self.quantizers
        return q is not None and q["actor"].frozen

    def seen_input(self, net: str, X) -> np.ndarray:
        """Layer 0's input of ``net`` as that network sees it (16-bit after the switch)."""
        q = self.quantizers
        return np.asarray(X, dtype=I64) if not self.quantized else q[net].fake_quantize(0, X)

    def packed_codes(self, net: str, X) -> np.ndarray:
        """Layer 0's input of ``net`` as a packed product reads it: its quantizer's codes q - 2^15."""
        return self.quantizers[net].quantize(0, X) - packed_code_offset(self.cfg)

    def range_read(self) -> Read:
        return Read("rg_addr", ("rg_lo", "rg_hi"), 0, self.cfg.array.quantizers)

    def decode_ranges(self, rows: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        """Tracker rows as :meth:`range_read` reads them (pe.out bits) -> signed (lo, hi) per entry."""
        bits = self.cfg.pe.out.bits
        return [tuple(v - (1 << bits) if v >> (bits - 1) else v for v in row) for row in rows]

    def merge_ranges(self, ranges: list[tuple[int, ...]]) -> None:
        """Widen the agent's ranges of the hidden layers' inputs by the engine's
        trackers (rows read by :meth:`range_read`). Ranges only grow, so
        merging is idempotent: a checkpoint taken in phase 1 keeps what the
        engine saw, and the engine may restart its trackers from zero."""
        q = self.quantizers
        signed = self.decode_ranges(ranges)
        for net in ("actor", "critic"):
            for i in range(1, len(self.prog.nets[net])):
                lo, hi = signed[quantizer_index(self.prog, net, i)]
                if q[net].seen[i]:
                    lo, hi = min(lo, q[net].lo[i]), max(hi, q[net].hi[i])
                q[net].lo[i], q[net].hi[i], q[net].seen[i] = lo, hi, True

    def switch_writes(self, ranges: list[tuple[int, ...]]) -> list[Write]:
        """The QAT switch: the engine's ranges of the hidden layers' inputs
        join the host's of the networks' inputs; the quantizers freeze; their
        table and the phase-2 program go to the engine."""
        self.switch(ranges)
        return [Write("prog", 0, tuple(self.words))] + self.table_writes()

    def switch(self, ranges: list[tuple[int, ...]]) -> None:
        """The QAT switch on the host's side (:meth:`switch_writes` without the writes)."""
        q = self.quantizers
        if q is None or self.quantized:
            raise ValueError("the QAT switch needs an agent tracking ranges (phase 1)")
        self.merge_ranges(ranges)
        self.ddpg.switch_to_fxp16()
        self._compile()

    def error_entries(self):
        """(table entry, the error quantizer, layer) of every hidden error the
        engine quantizes (none unless :func:`step_scaled_errors`)."""
        q = self.quantizers
        if q is None or not step_scaled_errors(self.cfg):
            return
        for key in ERROR_KEYS:
            for i in range(1, len(self.prog.nets["actor"])):
                yield error_index(self.prog, key, i), q[key], i

    def take_error_ranges(self, ranges: list[tuple[int, ...]]) -> list[Write]:
        """After every step (QAT phase 1 and 2, with 16-bit errors): each
        hidden error's largest magnitude from its range tracker (rows as
        :meth:`range_read` reads them; the tracker restarts with every
        product, so it holds this step's), which sets the step of that
        error's quantizer for the next step (delayed scaling,
        :class:`fixar.golden.qat.StepScaledErrors`). Returns the table writes
        of those entries (none before the switch, whose table writes take
        them). Kept in the agent every step, so a checkpoint holds them: the
        engine's trackers need not survive a resume."""
        signed = self.decode_ranges(ranges)
        entries = list(self.error_entries())
        for index, eq, i in entries:
            lo, hi = signed[index]
            eq.amax[i] = max(-lo, hi)
        return self._error_table_writes(entries) if self.quantized else []

    def _error_table_writes(self, entries) -> list[Write]:
        return [Write("qt", index, (quantizer_words(self.cfg, *eq.quantizer(eq.amax[i])),),
                      data=("delta", "zero", "magic", "shift")) for index, eq, i in entries]


    def phase_writes(self) -> list[Write]:
        """The program of the agent's current phase, and its quantizer table
        once frozen (after restoring a checkpoint into a running engine)."""
        self._compile()
        return [Write("prog", 0, tuple(self.words))] + (self.table_writes() if self.quantized else [])

    def table_writes(self) -> list[Write]:
        q = self.quantizers
        out = []
        for net in ("actor", "critic"):
            for i in range(len(self.prog.nets[net])):
                words = quantizer_words(self.cfg, q[net].delta[i], q[net].zero[i])
                out.append(Write("qt", quantizer_index(self.prog, net, i), (words,),
                                 data=("delta", "zero", "magic", "shift")))
        return out + self._error_table_writes(list(self.error_entries()))

    def quantizer_tops(self) -> dict[tuple[str, int], int] | None:
        """Each frozen quantizer's largest value by (network, layer) (the
        backward's ReLU masks stop the error there); None before the switch."""
        if not self.quantized:
            return None
        q = self.quantizers
        return {(net, i): q[net].top(i) for net in ("actor", "critic") for i in range(len(self.hidden) + 1)}

    def quantizer_table(self) -> list[tuple[int, int] | None]:
        """(Delta, z) per table entry, as the golden program executor takes them."""
        out: list = [None] * self.cfg.array.quantizers
        q = self.quantizers
        for net in ("actor", "critic"):
            for i in range(len(self.prog.nets[net])):
                out[quantizer_index(self.prog, net, i)] = (q[net].delta[i], q[net].zero[i])
        for index, eq, i in self.error_entries():
            out[index] = eq.quantizer(eq.amax[i])
        return out

    # ------------------------------------------------------------ parameters
    def _layers(self):
        """(program tensor, FixedDDPG array, moment network or None) of every parameter."""
        d = self.ddpg
        for net in self.PARAM_NETS:
            model = getattr(d, net)
            for i, (w, b, _) in enumerate(self.prog.nets[net]):
                yield w, model.W[i], net
                yield b, model.b[i], net

    def params(self) -> dict[str, np.ndarray]:
        """The agent's parameters as the program's tensors (first critic layer padded)."""
        T = self.prog.tensors
        return {name: _pad_first_layer(np.asarray(p), T[name].shape, self.obs_dim) if p.ndim == 2
                else np.asarray(p).copy() for name, p, _ in self._layers()}

    def moments(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Adam moments per program tensor, from FixedDDPG's flat per-network vectors."""
        T, out, offset = self.prog.tensors, {}, {"actor": 0, "critic": 0}
        for name, p, net in self._layers():
            if net not in offset:
                continue
            m, v = self.ddpg.moments[net]
            lo = offset[net]
            offset[net] = lo + p.size
            mm, vv = (x[lo:lo + p.size].reshape(p.shape) for x in (m, v))
            if p.ndim == 2:
                mm, vv = (_pad_first_layer(x, T[name].shape, self.obs_dim) for x in (mm, vv))
            out[name] = (mm, vv)
        return out

    def store_params(self, params: dict[str, np.ndarray], moments: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """Put parameters and moments read from the engine back into the host's agent."""
        flat: dict[str, tuple[list, list]] = {"actor": ([], []), "critic": ([], [])}
        for name, p, net in self._layers():
            value = params[name]
            p[...] = _unpad_first_layer(value, p.shape, self.obs_dim) if p.ndim == 2 else value
            if net in flat:
                m, v = moments[name]
                if p.ndim == 2:
                    m, v = (_unpad_first_layer(x, p.shape, self.obs_dim) for x in (m, v))
                flat[net][0].append(np.asarray(m).ravel())
                flat[net][1].append(np.asarray(v).ravel())
        for net, (m, v) in flat.items():
            self.ddpg.moments[net] = (np.concatenate(m).astype(I64), np.concatenate(v).astype(I64))

    # ------------------------------------------------------------ writes
    def setup_writes(self) -> list[Write]:
        """Program, constant scalars, every parameter and moment (not the noise
        generator's seed: see :meth:`prng_seed`)."""
        d = self.ddpg
        out = [Write("prog", 0, tuple(self.words))]
        for reg, value in ((Scalar.GAMMA, d.gamma), (Scalar.TAU, d.tau), (Scalar.LOSS_SCALE, d.loss_scale),
                           (Scalar.NOISE, d.noise_scale), (Scalar.B1, d.adam.b1), (Scalar.C1, d.adam.c1),
                           (Scalar.B2, d.adam.b2), (Scalar.C2, d.adam.c2), (Scalar.E2, d.adam.e2)):
            out.append(Write("scal", int(reg), (int(value),)))
        return out + (self.table_writes() if self.quantized else []) + self.param_writes()

    def param_writes(self) -> list[Write]:
        cfg, T, ad = self.cfg, self.prog.tensors, self.cfg.adam
        out = []
        for name, value in self.params().items():
            if T[name].space == "W":
                out.append(Write("wm", T[name].base, tuple(weight_image(cfg, value))))
            else:
                out.append(Write("bm", T[name].base, tuple(bias_image(cfg, value))))
        for name, (m, v) in self.moments().items():
            if T[name].space == "W":
                rows = zip(weight_image(cfg, m, ad.m.bits), weight_image(cfg, v, ad.v.bits))
                we = 1
            else:
                rows = zip(bias_image(cfg, m, ad.m.bits), bias_image(cfg, v, ad.v.bits))
                we = 2
            out.append(Write("st", T[name].grad, tuple(rows), we=we, data=("m_data", "v_data")))
        return out

    def prng_seed(self) -> int:
        return int(self.ddpg.prng)

    def batch_tensors(self, S, A, R, S2, done) -> dict[str, np.ndarray]:
        """The program's host-written tensors for one batch (codes, samples in columns)."""
        cfg, p, d = self.cfg, self.prog, self.ddpg
        fmt, B = cfg.pe.act32, self.batch
        obs_p = math.ceil(self.obs_dim / cfg.array.rows) * cfg.array.rows
        sa = np.zeros((obs_p + self.act_dim, B), dtype=I64)
        sa[:self.obs_dim], sa[obs_p:] = S, A
        one = 1 << fmt.frac
        q = self.quantizers
        if q is not None and not self.quantized:
            # QAT phase 1: the host sees the networks' inputs, the engine the hidden layers'
            q["actor"].track(0, S)
            q["critic"].track(0, np.vstack([S, A]))
        s_a, sa_seen = self.seen_input("actor", S), self.seen_input("critic", sa)
        # a packed program's inputs are the codes q - 2^15 of the networks' quantizers
        packed = any(t.packed for t in p.tensors.values())
        seen = self.packed_codes if packed else self.seen_input
        if packed:      # and its gradients' X^T the same codes of every feature (padding: 0's code)
            s_a = self.packed_codes("actor", _padded(S, p.tensors[p.inputs["s^T"]].shape[0]))
            sa_seen = self.packed_codes("critic", _padded(sa, p.tensors[p.inputs["[s;a]^T"]].shape[0]))
        roles = {"s": seen("actor", S), "s^T": s_a, "[s;mu]": seen("critic", S), "[s;a]": seen("critic", sa),
                 "[s;a]^T": sa_seen, "s2": seen("actor", S2), "[s2;mu']": seen("critic", S2),
                 "r": np.asarray(R, dtype=I64).reshape(1, B),
                 "done": np.where(np.asarray(done, dtype=bool), one, 0).reshape(1, B).astype(I64),
                 "ones": np.full((1, B), one, dtype=I64), "actor_error": np.full((1, B), d.actor_error_code(), I64)}
        return {p.inputs[role]: np.asarray(x, dtype=I64) for role, x in roles.items()}

    def tensor_writes(self, tensors: dict[str, np.ndarray], batch: int) -> list[Write]:
        """Activation-like tensors into every core's memory (each core its slice of the batch)."""
        cfg, T = self.cfg, {**self.prog.tensors}
        out = []
        for name, X in tensors.items():
            t = T[name]
            for n in range(cfg.array.cores):
                if t.packed and t.space == "T":     # the packed weight gradient's X^T: feature pairs
                    rows = pair_image(cfg, X, batch, n, t.shape[0] // 2)
                    out.append(Write("tm", t.base, tuple(rows), we=1 << n))
                elif t.packed:     # QAT's packed phase 2: codes, two batch entries a word
                    out.append(Write("am", t.base, tuple(packed_slot_major_image(cfg, X, batch, n)), we=1 << n))
                elif t.space == "T":
                    rows = feature_major_image(cfg, X, batch, n, t.shape[0])
                    out.append(Write("tm", t.base, tuple(rows), we=1 << n))
                elif batch == 1:     # a single vector: every core holds it (intra-layer mode)
                    out.append(Write("am", t.base, tuple(slot_major_image(cfg, X, 1, 0)), we=1 << n))
                else:
                    out.append(Write("am", t.base, tuple(slot_major_image(cfg, X, batch, n)), we=1 << n))
        return out

    def step_sizes(self) -> dict[str, int]:
        """This step's Adam step sizes (advances the host's bias-correction schedules)."""
        return {name: sched.next() for name, sched in self.ddpg.steps.items()}

    def step_writes(self, lr: dict[str, int]) -> list[Write]:
        return [Write("scal", int(Scalar.CRITIC_LR), (lr["critic"],)),
                Write("scal", int(Scalar.ACTOR_LR), (lr["actor"],))] + self.bfp_base_writes()

    def state_writes(self, state) -> list[Write]:
        """The state of the next acting pass, and its seed bases in BFP
        (a deployed actor's count this pass)."""
        s = self.seen_input("actor", np.asarray(state, dtype=I64).reshape(-1, 1))
        bases = self._deployed_base_writes() if self.deployed is not None else self.bfp_base_writes()
        return self.tensor_writes({self.prog.act_inputs["state"]: s}, 1) + bases

    # ------------------------------------------------------------ reads
    def action_read(self, explore: bool) -> Read:
        t = self.prog.tensors[self.prog.act_outputs["action" if explore else "mu"]]
        return Read("am_addr", ("am_rdata",), t.base, 1, re="am_re")

    def decode_action(self, rows) -> np.ndarray:
        R, fmt = self.cfg.array.rows, self.cfg.pe.act32
        word = rows[0][0] & ((1 << (R * fmt.bits)) - 1)      # core 0's lanes
        return unpack_words([word], R, fmt.bits)[:self.act_dim]

    def stats_reads(self) -> dict[str, Read]:
        """q and the TD target y of the last training step (one row per slot, every core)."""
        T = self.prog.tensors
        every_core = (1 << self.cfg.array.cores) - 1
        return {k: Read("am_addr", ("am_rdata",), T[t].base, T[t].rows, re="am_re", re_value=every_core)
                for k, t in self.prog.outputs.items()}

    def decode_batch_row(self, rows) -> np.ndarray:
        """A one-feature tensor (q, y) read from every core: samples in batch order."""
        return self._slot_major(rows, 1)[0]

    def param_reads(self) -> dict[str, Read | tuple[Read, Read]]:
        """Every parameter, and the online networks' moments."""
        T = self.prog.tensors
        out: dict = {}
        for name, _, net in self._layers():
            t = T[name]
            if t.space == "W":
                out[name] = Read("wm_addr", ("wm_rdata",), t.base, t.rows, re="wm_re")
                if not net.endswith("_t"):
                    out[name + ".mom"] = Read("st_addr", ("st_m_rdata", "st_v_rdata"), t.grad, t.rows)
            else:
                out[name] = Read("bm_addr", ("bm_rdata",), t.base, t.rows)
                if not net.endswith("_t"):
                    out[name + ".mom"] = Read("st_addr", ("st_bm_rdata", "st_bv_rdata"), t.grad, t.rows)
        return out

    def decode_params(self, got: dict[str, list]) -> tuple[dict, dict]:
        """Rows read by :meth:`param_reads` -> (parameters, moments) per program tensor."""
        cfg, T, ad, C = self.cfg, self.prog.tensors, self.cfg.adam, self.cfg.array.cols
        params, moments = {}, {}
        for name, _, _ in self._layers():
            t = T[name]
            rows = got[name]
            if t.space == "W":
                params[name] = weight_from_image(cfg, [r[0] for r in rows], *t.shape, cfg.pe.weight.bits)
            else:
                params[name] = unpack_words([r[0] for r in rows], C, cfg.pe.out.bits)[:t.shape[0]]
            if name + ".mom" in got:
                mrows = got[name + ".mom"]
                if t.space == "W":
                    m = weight_from_image(cfg, [r[0] for r in mrows], *t.shape, ad.m.bits)
                    v = weight_from_image(cfg, [r[1] for r in mrows], *t.shape, ad.v.bits, signed=False)
                else:
                    m = unpack_words([r[0] for r in mrows], C, ad.m.bits)[:t.shape[0]]
                    v = unpack_words([r[1] for r in mrows], C, ad.v.bits, signed=False)[:t.shape[0]]
                moments[name] = (m, v)
        return params, moments


def _padded(X, rows: int) -> np.ndarray:
    """X (features x batch) with zero features appended up to ``rows``."""
    X = np.asarray(X, dtype=I64)
    out = np.zeros((rows, X.shape[1]), dtype=I64)
    out[:X.shape[0]] = X
    return out
