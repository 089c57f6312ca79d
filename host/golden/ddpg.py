"""One DDPG training step in fixed point, bit-exact: the golden definition of
what the accelerator computes (docs/training.md), and the `golden` backend's
engine, in the FXP32 phase and with FIXAR's QAT (fixar.golden.qat).

Everything is integer codes: weights ``pe.weight``; activations, errors and
outputs ``pe.act32`` = ``pe.out`` (required, so a layer's output is the next
layer's input); gradients, moments ``cfg.adam``. Products through the array
are :func:`fixar.golden.layer.linear` (forward) and
:func:`fixar.golden.layer.transposed` (backward data); weight gradients are
one exact sum over the batch rounded once into the gradient format;
element-wise steps (TD target, loss gradient, ReLU and tanh derivatives,
soft target updates, exploration noise) are the vector unit's operations
(:mod:`fixar.golden.vector`), and the update is the Adam unit's
(:mod:`fixar.golden.adam`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fixar.config import ActFunc, ConfigError, FixarConfig, PEMode, VecOp
from fixar.golden.adam import AdamCodes, StepSize, adam_update_params, scalar_code
from fixar.golden.bfp_train import BfpLayers
from fixar.golden.fixed import I64, quantize, requantize, saturate
from fixar.golden.layer import linear, transposed
from fixar.golden.matmul import Operands, approx_lane_sums, fxp32_sums, operand, rounded_product
from fixar.golden.multiplier_routes import separable_rounded
from fixar.golden.qat import Fixed16, LayerQuantizers, StepScaledErrors, tanh_limit
from fixar.golden.vector import noise_add, vector_op


def weight_grad(cfg: FixarConfig, D, X, ops: Operands | None = None) -> np.ndarray:
    """dW = D X^T summed over the batch, one exact sum rounded into ``adam.grad``:
    the array's weight-gradient product (fixar.compiler.array_ops, docs/array.md).
    ``ops``: the gradient computation's operands, which has X's."""
    pe, gf = cfg.pe, cfg.adam.grad
    L = pe.lane_bits
    D, X = np.asarray(D, dtype=I64), np.asarray(X, dtype=I64)
    shift = pe.weight.frac + pe.act32.frac - gf.frac
    # the array's product: D in the weight lanes, X split in two lanes, each
    # sum modulo 2^acc_bits (a no-op at sane batch sizes), one rounding; one
    # float64 product where that is exact (fixar.golden.matmul.rounded_product)
    if pe.multiplier != "exact":        # D in the weight port, X's lanes: each product approximate
        fast = separable_rounded(pe, D, X.T, False, None, 0, shift, gf)
        if fast is not None:
            return fast[0]
        s_hi, s_lo = approx_lane_sums(pe, D, X.T, PEMode.FXP32)
        return requantize(s_hi, s_lo, L, shift, gf)
    Xop = operand(X.T, sums=False) if ops is None else ops(X, sums=False).T
    fast = rounded_product(operand(D), Xop, None, 0, shift, gf, pe.acc_bits, L)
    if fast is None:
        s_hi, s_lo = fxp32_sums(D, X.T, L, pe.acc_bits)
        return requantize(s_hi, s_lo, L, shift, gf)
    return fast[0]


def bias_grad(cfg: FixarConfig, D) -> np.ndarray:
    """db = the sum of D over the batch, in ``adam.grad``: the array's
    gradient product of D with a row of ones (1.0 in ``pe.act32``). With the
    exact multiplier that is the plain sum shifted; an approximate one
    multiplies every D by that 1.0 too (MBM's correction alone changes it),
    so then it is :func:`weight_grad` against the ones row, as the array does."""
    gf, af = cfg.adam.grad, cfg.pe.act32
    if cfg.pe.multiplier != "exact":
        D = np.asarray(D, dtype=I64)
        return weight_grad(cfg, D, np.full((1, D.shape[1]), 1 << af.frac, dtype=I64))[:, 0]
    s = np.asarray(D, dtype=I64).sum(axis=1)
    return saturate(s << I64(gf.frac - af.frac), gf)


@dataclass
class Net:
    """Codes of one network's parameters, with their Adam moments."""

    W: list[np.ndarray]
    b: list[np.ndarray]
    funcs: list[ActFunc]

    def forward(self, cfg: FixarConfig, X, qat: LayerQuantizers | None = None,
                track: bool = False, ops: Operands | None = None) -> list[np.ndarray]:
        """Every layer's input and the output. With frozen quantizers (QAT phase
        2) the inputs are the dequantized values the layers actually used; with
        ``track`` (phase 1 of QAT) each layer's input range is recorded.
        ``ops``: the operands of the gradient computation this pass is part of
        (fixar.golden.matmul.Operands), shared with its backward pass."""
        acts = [np.asarray(X, dtype=I64)]
        for i, (W, b, f) in enumerate(zip(self.W, self.b, self.funcs)):
            if qat is not None and qat.frozen:
                if track and isinstance(qat, BfpLayers):
                    qat.watch(i, acts[i])           # what the precision schedule measures (after the step)
                y, acts[i] = qat.layer(i, W, b, acts[i], f, ops)
            else:
                if track and qat is not None:
                    qat.track(i, acts[i])
                y = linear(cfg, W, acts[i], b, f, ops=ops)
            acts.append(y)
        return acts

    def copy(self) -> Net:
        return Net([w.copy() for w in self.W], [b.copy() for b in self.b], list(self.funcs))


class FixedDDPG:
    def __init__(self, cfg: FixarConfig, actor: Net, critic: Net, obs_dim: int, *, batch: int, gamma: float,
                 tau: float, noise: float, actor_lr: float, critic_lr: float, beta1: float, beta2: float,
                 eps: float, seed: int):
        pe = cfg.pe
        if pe.out != pe.act32 or pe.weight != pe.out:
            raise ConfigError("ddpg: training needs pe.out == pe.act32 (a layer's output feeds the next layer) "
                              "and pe.weight == pe.out (biases are updated like weights)")
        if cfg.adam.grad.frac < pe.act32.frac:
            raise ConfigError("ddpg: adam.grad needs at least pe.act32's fraction bits (bias gradients)")
        self.cfg, self.obs_dim, self.batch = cfg, obs_dim, batch
        self.actor, self.critic = actor, critic
        self.actor_t, self.critic_t = actor.copy(), critic.copy()
        cf = cfg.vector.coef_frac  # gamma, tau, 2/B, noise scale: the vector unit's coefficients
        coef = lambda name, value: scalar_code("ddpg", name, value, cf, 1e-3)
        self.gamma = coef("gamma", gamma)
        self.tau = coef("tau", tau)
        # the actor's error starts from 2/B; the critic's loss scale carries its gradient scale 2^k
        self.two_over_batch = coef("2 / batch", 2.0 / batch)
        self.loss_scale = coef("2^adam.critic_grad_scale_log2 * 2 / batch",
                               2.0 ** cfg.adam.critic_grad_scale_log2 * 2.0 / batch)
        self.noise_scale = coef("noise * sqrt(3)", noise * np.sqrt(3.0)) if noise > 0 else 0
        self.adam = AdamCodes.build(cfg, beta1, beta2, eps)
        self.steps = {"actor": StepSize(cfg, actor_lr, beta1, beta2), "critic": StepSize(cfg, critic_lr, beta1, beta2)}
        self.moments = {name: (np.zeros(n, dtype=I64), np.zeros(n, dtype=I64))
                        for name, n in (("actor", self._size(actor)), ("critic", self._size(critic)))}
        self.prng = np.uint32(seed & 0xFFFFFFFF or 1)
        # QAT: None (plain FXP32), or per-network quantizers tracking ranges until the switch
        self.qat: dict[str, LayerQuantizers] | None = None

    # With array.qat_errors other than "fxp32": the quantizers of the backward errors, one
    # set per backward pass (the critic's errors from the TD loss and from -Q in
    # the actor update have different scales). Index i: the error of layer i's
    # input, which feeds layer i's transposed product and layer i-1's gradients.
    ERROR_QUANTIZERS = {"actor.errors": "actor", "critic.errors": "critic", "critic.errors_from_q": "critic"}

    def enable_qat(self) -> None:
        """Start tracking layer-input ranges (QAT phase 1), and the hidden
        layers' error ranges where the config keeps errors in 16 bits."""
        if self.qat is None:
            nets = {"actor": self.actor, "critic": self.critic}
            self.qat = {name: LayerQuantizers(self.cfg, len(net.W)) for name, net in nets.items()}
            kind = {"fxp16": LayerQuantizers, "fxp16_step": StepScaledErrors,
                    "fxp16_delayed": StepScaledErrors}.get(self.cfg.array.qat_errors)
            if kind is not None:
                self.qat.update({key: kind(self.cfg, len(nets[net].W)) for key, net in self.ERROR_QUANTIZERS.items()})

    def use_fxp16_from_scratch(self) -> None:
        """Every layer input in the fixed 16-bit format pe.act16 from now on (no QAT)."""
        self.qat = {"actor": Fixed16(self.cfg), "critic": Fixed16(self.cfg)}

    def use_bfp(self, fixed: int | None = None) -> None:
        """Every product in block floating point from now on (docs/bfp.md): the
        layers start at bfp.mantissa_bits and widen by FAST's schedule, or stay
        at ``fixed`` bits. The rounding seeds come from the exploration PRNG's
        state, so a run's seed fixes them."""
        seed = int(self.prng)
        self.qat = {"actor": BfpLayers(self.cfg, len(self.actor.W), seed, fixed),
                    "critic": BfpLayers(self.cfg, len(self.critic.W), seed ^ 0x5BD1E995, fixed, split=self.obs_dim)}

    def switch_to_fxp16(self) -> None:
        """The QAT switch: freeze the quantizers; activations are 16-bit from now on."""
        self.enable_qat()
        for q in self.qat.values():
            if not q.frozen:
                q.freeze()

    @property
    def phase(self) -> str:
        if self.qat is None:
            return "fxp32"
        if isinstance(self.qat["actor"], BfpLayers):
            return "bfp"
        return "fxp16" if self.qat["actor"].frozen else "qat-tracking"

    def _q(self, name: str):
        return None if self.qat is None else self.qat[name]

    @classmethod
    def _size(cls, net: Net) -> int:
        return sum(p.size for p in cls._params(net))

    @staticmethod
    def _params(net: Net) -> list[np.ndarray]:
        return [p for pair in zip(net.W, net.b) for p in pair]

    # ------------------------------------------------------------ acting
    def act(self, s_codes: np.ndarray, explore: bool) -> np.ndarray:
        """The actor's action; with ``explore``, plus the vector unit's NOISE
        (Irwin-Hall noise from the xorshift32 stream, standard deviation
        ``noise``), clipped to the action bounds."""
        q = self._q("actor")
        mark = q.conversions if isinstance(q, BfpLayers) else None
        a = self.actor.forward(self.cfg, np.asarray(s_codes, dtype=I64).reshape(-1, 1), q)[-1][:, 0]
        if mark is not None:
            q.rewind(mark)          # acting and evaluation leave training's BFP roundings unchanged
        if explore and self.noise_scale:
            a, state = noise_add(self.cfg, a, int(self.prng), self.noise_scale)
            self.prng = np.uint32(state)
        return a

    # ------------------------------------------------------------ training
    def _backward(self, net: Net, acts: list[np.ndarray], D: np.ndarray, qat=None, want_input: bool = False,
                  want_grads: bool = True, ops: Operands | None = None, errors: str | None = None):
        """Gradients of net for output error D (pre-activation of the last layer).
        ``qat``: the network's quantizers; once frozen, the ReLU masks also stop
        the error where a layer's input sits at its quantizer's top. Without
        ``want_grads`` only the error is propagated (the parameter gradients
        come back empty). ``errors``: the key of this pass's error quantizers
        (with array.qat_errors other than "fxp32"): each hidden layer's
        masked error is tracked in phase 1 and is its 16-bit value
        after the switch, which the layer's transposed product and the
        gradients below it use."""
        eq = None if errors is None or self.qat is None else self.qat.get(errors)
        cfg = self.cfg
        grads = []
        for i in range(len(net.W) - 1, -1, -1):
            bfp = qat if isinstance(qat, BfpLayers) else None
            if want_grads:
                if bfp is None:
                    grads.append((weight_grad(cfg, D, acts[i], ops), bias_grad(cfg, D)))
                else:
                    grads.append((weight_grad(cfg, *bfp.gradient_operands(i, D, acts[i])), bias_grad(cfg, D)))
            if i > 0 or want_input:
                if bfp is None:
                    D = transposed(cfg, net.W[i], D, Wop=None if ops is None else ops(net.W[i]))
                else:
                    D = transposed(cfg, *bfp.transposed_operands(i, net.W[i], D))
                if i > 0:
                    top = None if qat is None else qat.top(i)          # None until the quantizers freeze
                    D = vector_op(cfg, VecOp.RELU_MASK, D, acts[i], limit=top)   # ReLU of the layer below
                    if eq is not None and eq.frozen:
                        D = eq.fake_quantize(i, D)
                    elif eq is not None:
                        eq.track(i, D)
        flat = [g for pair in reversed(grads) for g in pair]
        return flat, D

    def _update(self, name: str, net: Net, grads: list[np.ndarray], target: Net) -> None:
        """Adam on all of a network's parameters at once (as one flat vector),
        then the soft update of its target network."""
        m, v = self.moments[name]
        self.moments[name] = adam_update_params(self.cfg, self.adam, self.steps[name].next(), self._params(net),
                                                grads, m, v, self._params(target), self.tau)

    def critic_gradients(self, S, A, R, S2, done):
        """Critic parameter gradients for the TD loss, times 2^adam.critic_grad_scale_log2;
        returns (grads, q, y)."""
        cfg, ops = self.cfg, Operands()
        # TD target y = r + gamma (1 - done) Q'(s', mu'(s'))
        mu2 = self.actor_t.forward(cfg, S2, self._q("actor"), ops=ops)[-1]
        q2 = self.critic_t.forward(cfg, np.vstack([S2, mu2]), self._q("critic"), ops=ops)[-1]
        y = vector_op(cfg, VecOp.TD, np.broadcast_to(R, q2.shape), q2, np.broadcast_to(done, q2.shape), self.gamma)
        # d loss / dQ = 2 (Q - y) / B, times 2^k
        c_acts = self.critic.forward(cfg, np.vstack([S, A]), self._q("critic"), track=True, ops=ops)
        q = c_acts[-1]
        dq = vector_op(cfg, VecOp.SCALE, vector_op(cfg, VecOp.SUB, q, y), c=self.loss_scale)
        grads, _ = self._backward(self.critic, c_acts, dq, self._q("critic"), ops=ops, errors="critic.errors")
        return grads, q, y

    def actor_error_code(self) -> int:
        """-2^k / B in pe.act32: the error the actor's backward starts from at
        the critic's output (k = adam.actor_grad_scale_log2)."""
        cfg, fmt = self.cfg, self.cfg.pe.act32
        k = cfg.adam.actor_grad_scale_log2
        return -int(requantize(I64(0), I64(self.two_over_batch), 0, cfg.vector.coef_frac - fmt.frac + 1 - k, fmt))

    def actor_gradients(self, S):
        """Actor parameter gradients of -mean Q(s, mu(s)), times 2^adam.actor_grad_scale_log2:
        dQ/da backpropagated through the critic (which is not updated), then through tanh."""
        cfg, ops = self.cfg, Operands()
        a_acts = self.actor.forward(cfg, S, self._q("actor"), track=True, ops=ops)
        mu = a_acts[-1]
        qa_acts = self.critic.forward(cfg, np.vstack([S, mu]), self._q("critic"), ops=ops)
        d_out = np.full((1, S.shape[1]), self.actor_error_code(), dtype=I64)
        # the critic is not updated here: only its input's error is needed
        _, dx = self._backward(self.critic, qa_acts, d_out, self._q("critic"), want_input=True, want_grads=False,
                               ops=ops, errors="critic.errors_from_q")
        da = dx[self.obs_dim:]
        # tanh' from mu as the critic saw it (its 16-bit value after the QAT switch:
        # the engine keeps only that copy of mu), zero where that is a saturated tanh
        d_mu = vector_op(cfg, VecOp.DTANH, da, qa_acts[0][self.obs_dim:], limit=tanh_limit(self._q("critic"), 0))
        grads, _ = self._backward(self.actor, a_acts, d_mu, self._q("actor"), ops=ops, errors="actor.errors")
        return grads

    def train(self, s, a, r, s2, done) -> dict:
        """One step on a batch of codes (columns are samples): critic update,
        actor update through the updated critic, soft target updates."""
        fmt = self.cfg.pe.act32
        S, A, S2 = (np.asarray(x, dtype=I64) for x in (s, a, s2))
        R, Dn = np.asarray(r, dtype=I64)[None, :], np.asarray(done, dtype=bool)[None, :]
        for q in (self.qat or {}).values():
            if isinstance(q, BfpLayers):
                q.begin_step()
        c_grads, q, y = self.critic_gradients(S, A, R, S2, Dn)
        # the critic's target moves before the actor's update, which does not read it
        self._update("critic", self.critic, c_grads, self.critic_t)
        self._update("actor", self.actor, self.actor_gradients(S), self.actor_t)
        for layers in (self.qat or {}).values():
            if isinstance(layers, BfpLayers):
                layers.end_step()
        qf = q.astype(np.float64) * fmt.lsb
        yf = y.astype(np.float64) * fmt.lsb
        return {"critic_loss": float(np.mean((qf - yf) ** 2)), "q_mean": float(np.mean(qf))}


def quantize_net(cfg: FixarConfig, W: list[np.ndarray], b: list[np.ndarray], funcs: list[ActFunc]) -> Net:
    return Net([quantize(w, cfg.pe.weight) for w in W], [quantize(x, cfg.pe.out) for x in b], funcs)
