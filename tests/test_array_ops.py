"""Host side of the array: layouts, descriptors, the cycle model, and errors
for operations that do not fit (fixar.compiler.array_ops), plus the golden model's
transposed product. The RTL side is checked by tb/test_array.py."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import reference as ref
from fixar.compiler.array_ops import (
    ArrayOpError,
    LayerOp,
    activation_image,
    cycles,
    describe,
    unpack_outputs,
    weight_image,
)
from fixar.config import ActFunc, ConfigError, PEMode, load
from fixar.golden.layer import linear, transposed


def words(word: int, n: int, bits: int) -> list[int]:
    return [ref.signed((word >> (i * bits)) & ((1 << bits) - 1), bits) for i in range(n)]


@pytest.mark.parametrize("shape", [(1, 1), (4, 4), (5, 3), (13, 29), (29, 13)])
def test_weight_layout_serves_tile_columns_and_rows(shape):
    """Reading one word per bank at the documented addresses and rotating gives
    PE row r a tile's column r (forward) or row r (transposed) of W."""
    cfg = load("small")
    C, bits = cfg.array.cols, cfg.pe.weight.bits
    rng = np.random.default_rng(1)
    W = rng.integers(-1000, 1000, shape)
    rows = [words(w, C, bits) for w in weight_image(cfg, W)]
    M, K = shape
    n_it, n_kc = -(-M // C), -(-K // C)
    Wp = np.zeros((n_it * C, n_kc * C), dtype=np.int64)
    Wp[:M, :K] = W
    for it in range(n_it):
        for kt in range(n_kc):
            base = (it * n_kc + kt) * C
            for r in range(C):
                fwd = [rows[base + (b - r) % C][b] for b in range(C)]
                tr = [rows[base + r][b] for b in range(C)]
                col = [fwd[(c + r) % C] for c in range(C)]
                row = [tr[(c + r) % C] for c in range(C)]
                assert col == list(Wp[it * C:(it + 1) * C, kt * C + r])
                assert row == list(Wp[it * C + r, kt * C:(kt + 1) * C])


def test_intra_batch_splits_the_batch_across_cores_and_packs_fxp16_pairs():
    cfg = load("small")
    op = LayerOp(M=3, K=5, batch=7, mode=PEMode.FXP16)
    d = describe(cfg, op)
    assert d.slots == 2  # 7 vectors -> 4 pairs -> 2 per core
    X = np.arange(35).reshape(5, 7) - 17
    L = cfg.pe.lane_bits
    img1 = activation_image(cfg, op, d, X, 1)  # vectors 4, 5 (slot 0) and 6, padding (slot 1)
    first = words(img1[0], cfg.array.rows, cfg.pe.act32.bits)
    assert [ref.signed(w & 0xFFFF, L) for w in first] == list(X[:4, 4])
    assert [ref.signed((w >> L) & 0xFFFF, L) for w in first] == list(X[:4, 5])
    slot1 = words(img1[1], cfg.array.rows, cfg.pe.act32.bits)
    assert [(w >> L) & 0xFFFF for w in slot1] == [0] * 4


def test_cycle_model_hides_weight_loads_at_large_batch():
    cfg = load("default")
    fwd = describe(cfg, LayerOp(M=300, K=400, batch=64))
    assert (fwd.n_ot, fwd.n_kt, fwd.slots) == (19, 25, 32)
    assert cycles(cfg, fwd, 9) == 16 + (19 * 25 - 1) * 32 + 32 + 9
    one = describe(cfg, LayerOp(M=300, K=400, batch=1, intra_layer=True))
    assert one.n_kr == 13  # 25 k-tiles in rounds of 2 cores
    assert cycles(cfg, one, 9) == 16 + (19 * 13 - 1) * 16 + 1 + 9


@pytest.mark.parametrize("op, message", [
    (LayerOp(M=0, K=3, batch=1), "M = 0"),
    (LayerOp(M=3, K=3, batch=2, intra_layer=True), "intra-layer mode computes one vector"),
    (LayerOp(M=3, K=3, batch=4000), "partial-sum slots"),
    (LayerOp(M=3, K=3, batch=1, transpose=True), "takes no bias"),
    (LayerOp(M=3, K=3, batch=1, mode=PEMode.FXP16, store=True), "store needs FXP32"),
    (LayerOp(M=4000, K=4000, batch=1), "weight memory has"),
    (LayerOp(M=3, K=3, batch=1, w_base=65534), "weight memory has"),
    (LayerOp(M=3, K=300, batch=512), "activation memory has"),
    (LayerOp(M=3, K=3, batch=1, store=True, y_base=16383), "Y needs activation rows"),
    (LayerOp(M=3, K=3, batch=1, b_base=5000), "bias memory has"),
])
def test_operations_that_do_not_fit_are_rejected_when_built(op, message):
    with pytest.raises(ArrayOpError, match=message):
        describe(load("small"), op)


def _packed(**kw) -> LayerOp:
    return LayerOp(**{"M": 3, "K": 5, "batch": 7, "mode": PEMode.FXP16, "packed": True, **kw})


def test_a_packed_qat_product_has_its_correction_slot_first():
    """One more slot per core (the correction item, cycles included); the
    input rows hold only the data slots; the correction's word is
    (2^15 - z) 2^e in two's complement; no output beat comes from slot 0."""
    cfg = load("small")
    plain = describe(cfg, LayerOp(M=3, K=5, batch=7, mode=PEMode.FXP16))
    d = describe(cfg, _packed(pq_zero=40000, pq_e=3))
    assert (d.slots, d.pq, d.pq_e) == (plain.slots + 1, 1, 3)
    assert d.pq_c == ((1 << 15) - 40000) * 8 + (1 << 32)
    wide, wide_plain = describe(cfg, _packed(batch=32)), describe(cfg, LayerOp(M=3, K=5, batch=32, mode=PEMode.FXP16))
    assert wide_plain.slots >= cfg.array.rows       # one more cycle per tile step where the slots set the pace
    assert cycles(cfg, wide, 30) == cycles(cfg, wide_plain, 30) + wide.n_ot * wide.n_kt
    X = np.arange(35).reshape(5, 7) - 17
    assert activation_image(cfg, _packed(), describe(cfg, _packed()), X, 1) == \
        activation_image(cfg, LayerOp(M=3, K=5, batch=7, mode=PEMode.FXP16), plain, X, 1)
    with pytest.raises(AssertionError, match="correction slot"):
        unpack_outputs(cfg, _packed(), d, [(0, 0, 0, 0, 0)])
    beats = [(c, 0, s, 0, 0) for c in range(2) for s in (1, 2)]
    assert unpack_outputs(cfg, _packed(), d, beats).shape == (3, 7)


def test_a_lane_store_writes_the_fxp32_rows_of_its_outputs():
    """A lane store (pq_lane 1 or 2) stores without fq, at the cycles of the
    packed product, and its rows are the FXP32 layout's: two per packed item."""
    cfg = load("small")
    lane = describe(cfg, _packed(batch=8, store=True, pq_lane=2))
    assert (lane.pq_lane, lane.store, lane.fq) == (2, 1, 0)
    assert cycles(cfg, lane, 30) == cycles(cfg, describe(cfg, _packed(batch=8)), 30)
    rows = cfg.memory.act_words_per_core // cfg.array.rows
    fxp32 = describe(cfg, LayerOp(M=3, K=5, batch=8, store=True))
    # the last row a lane store may start from is the last an FXP32 store of the same outputs may
    last = rows - fxp32.n_ot * fxp32.slots
    describe(cfg, _packed(batch=8, store=True, pq_lane=1, y_base=last))
    with pytest.raises(ArrayOpError, match="Y needs activation rows"):
        describe(cfg, _packed(batch=8, store=True, pq_lane=1, y_base=last + 1))


@pytest.mark.parametrize("op, message", [
    (_packed(mode=PEMode.FXP32), "mode must be FXP16"),
    (_packed(intra_layer=True, batch=2), "intra_layer is not built yet"),
    (_packed(track=True), "track is not built yet"),
    (_packed(batch=6, store_t=True), "multiple of 2 x 2 cores"),
    (_packed(batch=8, mask=True), "it needs store"),
    (_packed(batch=8, mask=True, store=True, fq=True, m_base=16383), "mask bits need mask rows"),
    (_packed(store=True), "store needs fq"),
    (_packed(pq_e=17), "0 <= e <= 16"),
    (_packed(pq_zero=65537), "zero point is in"),
    (_packed(pq_zero=0, pq_e=16), "is not a 32-bit code"),
    (_packed(K=1024), "for at most 1023"),
    (LayerOp(M=3, K=5, batch=8, mode=PEMode.FXP16, store=True, pq_lane=1), "it needs packed"),
    (_packed(batch=8, pq_lane=3, store=True), "stores its codes with pq_lane 0"),
    (_packed(batch=8, pq_lane=4, store=True, fq=True), "pq_lane = 4"),
    (_packed(batch=8, pq_lane=1), "it needs store"),
    (_packed(batch=8, pq_lane=2, store=True, store_t=True), "takes no store_t or mask"),
    (_packed(batch=6, pq_lane=1, store=True), "multiple of 2 x 2 cores"),
    # every slot a pair of vectors: the correction slot is one too many
    (_packed(batch=2 * load("small").array.cores * load("small").array.psum_slots), "partial-sum slots"),
])
def test_packed_qat_products_that_cannot_run_are_rejected(op, message):
    with pytest.raises(ArrayOpError, match=message):
        describe(load("small"), op)


def test_outputs_missing_or_duplicated_are_errors():
    cfg = load("small")
    op = LayerOp(M=5, K=3, batch=2)
    d = describe(cfg, op)
    with pytest.raises(AssertionError, match="never arrived"):
        unpack_outputs(cfg, op, d, [(0, 0, 0, 0, 0)])
    with pytest.raises(AssertionError, match="arrived twice"):
        unpack_outputs(cfg, op, d, [(0, 0, 0, 0, 0), (0, 0, 0, 0, 0)])


def test_array_config_needs_square_tiles_and_whole_rows():
    cfg = load("small")
    with pytest.raises(ConfigError, match="must equal array.cols"):
        cfg.variant(array=dataclasses.replace(cfg.array, rows=8))
    with pytest.raises(ConfigError, match="memory.act_words_per_core: 30 words"):
        cfg.variant(memory=dataclasses.replace(cfg.memory, act_words_per_core=30))


@pytest.mark.parametrize("mode", list(PEMode), ids=lambda m: m.name)
def test_golden_transposed_product_is_w_transpose_times_d(mode):
    """Property: W^T D from the stored W equals the exact sum over W's rows
    (Python ints), for random shapes including primes and 1."""
    cfg = load("default")
    pe = cfg.pe
    act = pe.act32 if mode == PEMode.FXP32 else pe.act16
    rng = np.random.default_rng(3)
    for M, K, B in [(1, 1, 1), (7, 3, 2), (17, 23, 5), (31, 1, 3)]:
        W = rng.integers(pe.weight.min_int, pe.weight.max_int + 1, (M, K))
        D = rng.integers(act.min_int, act.max_int + 1, (M, B))
        got = transposed(cfg, W, D, ActFunc.IDENTITY, mode)
        assert got.shape == (K, B)
        L = pe.lane_bits
        for k in range(K):
            for j in range(B):
                if mode == PEMode.FXP32:
                    lo = ref.signed(sum(int(W[i, k]) * (int(D[i, j]) & ((1 << L) - 1)) for i in range(M)), pe.acc_bits)
                    hi = ref.signed(sum(int(W[i, k]) * (int(D[i, j]) >> L) for i in range(M)), pe.acc_bits)
                    want = ref.round_shift(hi * (1 << L) + lo, pe.shift32, pe.out)
                else:
                    s = ref.signed(sum(int(W[i, k]) * int(D[i, j]) for i in range(M)), pe.acc_bits)
                    want = ref.round_shift(s, pe.shift16, pe.out)
                assert got[k, j] == want, (M, K, B, k, j)


def test_golden_fxp32_product_is_exact_integer_arithmetic_when_in_range():
    """Property: with small enough operands that nothing saturates, the FXP32
    layer equals round-to-nearest-even of the exact rational W X + b."""
    cfg = load("default")
    pe = cfg.pe
    rng = np.random.default_rng(4)
    for _ in range(20):
        M, K, B = (int(v) for v in rng.integers(1, 40, 3))
        W = rng.integers(-(1 << 20), 1 << 20, (M, K))
        X = rng.integers(-(1 << 20), 1 << 20, (K, B))
        b = rng.integers(-(1 << 20), 1 << 20, M)
        got = linear(cfg, W, X, b)
        exact = W.astype(object) @ X.astype(object) + (b.astype(object) << pe.shift32)[:, None]
        want = np.vectorize(lambda v: ref.round_shift(int(v), pe.shift32, pe.out))(exact)
        assert np.array_equal(got, want.astype(np.int64))


@pytest.mark.parametrize("M, K, batch", [(1, 1, 1), (5, 3, 9), (13, 7, 40), (4, 4, 8)])
def test_gradient_layout_feeds_each_core_its_batch_slice(M, K, batch):
    """Reading the documented rows of a gradient product gives core n's PE row r
    of tile (ot, j) the error D[ot*R .. , n*S + j*R + r] and slot k the input
    X[k, n*S + j*R ..]; summing the products over cores and rounds is D X^T."""
    from fixar.compiler.array_ops import grad_images

    cfg = load("small")
    R, N, bits = cfg.array.rows, cfg.array.cores, cfg.pe.act32.bits
    rng = np.random.default_rng(M * 100 + K)
    D, X = rng.integers(-50, 50, (M, batch)), rng.integers(-50, 50, (K, batch))
    op = LayerOp(M=M, K=K, batch=batch, grad=True, bias=False)
    d = describe(cfg, op)
    total = np.zeros((d.n_ot * R, K), dtype=np.int64)
    for n in range(N):
        d_img, x_img = grad_images(cfg, d, D, X, n)
        for ot in range(d.n_ot):
            for j in range(d.n_kr):
                # weight tile: PE row r <- D row (ot, j*R + r) of the slice, zero beyond the slice
                tile = np.array([words(d_img[ot * d.batch + j * R + r], R, bits) if j * R + r < d.batch
                                 else [0] * R for r in range(R)])            # [r (batch), c (output)]
                banks = [words(x_img[j * K + k], R, bits) for k in range(K)]   # word r in bank (r + k) mod R
                xs = np.array([[banks[k][(r + k) % R] for r in range(R)] for k in range(K)])  # [k, r (batch)]
                total[ot * R:(ot + 1) * R] += tile.T @ xs.T
    assert np.array_equal(total[:M], D @ X.T)


def test_gradient_products_that_do_not_fit_are_rejected():
    cfg = load("small")
    with pytest.raises(ArrayOpError, match="partial-sum slots"):
        describe(cfg, LayerOp(M=4, K=cfg.array.psum_slots + 1, batch=8, grad=True, bias=False))
    with pytest.raises(ArrayOpError, match=r"FXP32 \(FXP16 when packed\), intra-batch"):
        describe(cfg, LayerOp(M=4, K=4, batch=8, grad=True, bias=False, mode=PEMode.FXP16))
    with pytest.raises(ArrayOpError, match=r"FXP32 \(FXP16 when packed\), intra-batch"):
        describe(cfg, LayerOp(M=4, K=4, batch=8, grad=True))          # a bias
    rows = cfg.memory.xt_words_per_core // cfg.array.rows
    with pytest.raises(ArrayOpError, match=r"X\^T needs X\^T memory rows"):
        describe(cfg, LayerOp(M=4, K=300, batch=512, grad=True, bias=False, x_base=rows - 10))


def _error_t(**kw) -> LayerOp:
    """A hidden error's masked transposed product (QAT's 16-bit errors)."""
    return LayerOp(**{"M": 5, "K": 3, "batch": 8, "transpose": True, "bias": False, "store": True, "mask": True,
                      "track": True, "fq": True, "qidx": 7, **kw})


def _on_codes(**kw) -> dict:
    return {"mode": PEMode.FXP16, "packed": True, "pq_zero": 1 << 15, "pq_q": 3, **kw}


def test_the_16_bit_errors_products_are_described_and_left_to_the_golden_executor():
    """A pair store (pq_lane 3) writes half the rows of the FXP32 store at the
    same cycles; a packed transposed product on codes with its step from the
    table (pq_q) has the packed product's slots and a zero correction; a
    gradient reads D as codes in half the rows."""
    cfg = load("small")
    rows = cfg.memory.act_words_per_core // cfg.array.rows
    fxp32 = describe(cfg, _error_t(fq=False, track=False))
    pair = describe(cfg, _error_t(pq_lane=3))
    assert (pair.pq_lane, pair.fq, pair.track, pair.mask) == (3, 1, 1, 1)
    assert cycles(cfg, pair, 30) == cycles(cfg, fxp32, 30)
    half = rows - fxp32.n_ot * fxp32.slots // 2          # the last first row a pair store's half rows allow
    describe(cfg, _error_t(pq_lane=3, y_base=half))
    with pytest.raises(ArrayOpError, match="Y needs activation rows"):
        describe(cfg, _error_t(pq_lane=3, y_base=half + 1))
    packed = describe(cfg, _error_t(**_on_codes()))
    assert (packed.pq, packed.pq_c, packed.pq_e, packed.slots) == (1, 0, 0, 8 // 2 // cfg.array.cores + 1)
    assert cycles(cfg, packed, 30) == cycles(cfg, describe(cfg, _packed(M=3, K=5, batch=8)), 30)
    grad = LayerOp(M=5, K=7, batch=8, grad=True, bias=False, gstore=1, pq_q=2)
    d_rows = describe(cfg, grad).n_ot * 8 // cfg.array.cores // 2
    describe(cfg, dataclasses.replace(grad, w_base=rows - d_rows))
    with pytest.raises(ArrayOpError, match="D needs activation memory rows"):
        describe(cfg, dataclasses.replace(grad, w_base=rows - d_rows + 1))


@pytest.mark.parametrize("op, message", [
    (_error_t(mask=False), "a masked transposed one"),
    (_error_t(pq_lane=3, fq=False), "it needs store and fq"),
    (_error_t(pq_lane=3, batch=6), "batch 6 is not a multiple of 2 x 2 cores"),
    (_error_t(**_on_codes(pq_q=13)), "at most array.quantizers = 8"),
    (_error_t(**_on_codes(pq_zero=0)), "it needs packed, pq_zero = 32768 and pq_e = 0"),
    (_error_t(**_on_codes(pq_e=2)), "it needs packed, pq_zero = 32768 and pq_e = 0"),
    (_error_t(pq_q=1), "it needs packed"),
    (LayerOp(M=5, K=7, batch=6, grad=True, bias=False, gstore=1, pq_q=2), "batch 6 is not a multiple of 2 x 2"),
])
def test_16_bit_errors_products_that_cannot_run_are_rejected(op, message):
    with pytest.raises(ArrayOpError, match=message):
        describe(load("small"), op)


def _packed_grad(**kw) -> LayerOp:
    return LayerOp(**{"M": 5, "K": 7, "batch": 9, "grad": True, "bias": False, "mode": PEMode.FXP16,
                      "packed": True, "pq_zero": 1 << 15, "pq_e": 3, "gstore": 1, **kw})


@pytest.mark.parametrize("M, K, batch, fold", [(1, 1, 1, False), (5, 7, 9, True), (13, 8, 40, False),
                                               (4, 4, 8, True)])
def test_packed_gradient_layout_pairs_features_in_a_word(M, K, batch, fold):
    """A packed weight gradient: its correction slot first, one slot per
    feature pair (and the folded bias gradient's last), X^T rows of pairs
    with entry r of pair k' in bank (r + 2k') mod R; reading the documented
    rows and adding the lanes' sums, shifted by e, to the correction's is
    the FXP32 gradient of the dequantized inputs (q - z) 2^e."""
    from fixar.compiler.array_ops import grad_images

    cfg = load("small")
    R, N, bits, L = cfg.array.rows, cfg.array.cores, cfg.pe.act32.bits, cfg.pe.act16.bits
    rng = np.random.default_rng(M * 100 + K)
    z, e = int(rng.integers(0, 1 << 16)), 3
    D, q = rng.integers(-50, 50, (M, batch)), rng.integers(0, 1 << 16, (K, batch))
    op = _packed_grad(M=M, K=K, batch=batch, pq_zero=z, pq_e=e, gstore=3 if fold else 1)
    d = describe(cfg, op)
    pairs = (K + 1) // 2
    assert (d.pq, d.mode, d.slots) == (1, int(PEMode.FXP16), 1 + pairs + fold)
    assert ref.signed(d.pq_c, bits) == ((1 << 15) - z) << e
    total = np.zeros((d.n_ot * R, 2 * pairs), dtype=np.int64)
    for n in range(N):
        d_img, x_img = grad_images(cfg, d, D, q - (1 << 15), n)
        for ot in range(d.n_ot):
            for j in range(d.n_kr):
                tile = np.array([words(d_img[ot * d.batch + j * R + r], R, bits) if j * R + r < d.batch
                                 else [0] * R for r in range(R)])             # [r (batch), c (output)]
                banks = [words(x_img[j * pairs + k], R, bits) for k in range(pairs)]
                w = np.array([[banks[k][(r + 2 * k) % R] for r in range(R)] for k in range(pairs)])
                lanes = [ref.signed(v & 0xFFFF, L) for v in w.ravel()], [ref.signed(v >> L, L) for v in w.ravel()]
                lo, hi = (np.array(x).reshape(pairs, R) for x in lanes)
                corr = tile.sum(axis=0)[:, None] * (((1 << 15) - z) << e)
                total[ot * R:(ot + 1) * R, 0::2] += (tile.T @ lo.T << e) + corr
                total[ot * R:(ot + 1) * R, 1::2] += (tile.T @ hi.T << e) + corr
    X = (q - z) << e
    assert np.array_equal(total[:M, :K], D @ X.T)
    assert cycles(cfg, d, 30) < cycles(cfg, describe(cfg, LayerOp(M=M, K=K, batch=batch, grad=True, bias=False,
                                                                  gstore=3 if fold else 1)), 30) or K < 4


@pytest.mark.parametrize("op, message", [
    (_packed_grad(mode=PEMode.FXP32), "FXP16 when packed"),
    (_packed_grad(gstore=0), "gstore 1 or 3"),
    (_packed_grad(gstore=2, K=1), "gstore 1 or 3"),
    (_packed_grad(pq_t=True), "FXP16 when packed"),
    (_packed_grad(pq_e=17), "0 <= e <= 16"),
    (_packed_grad(pq_zero=0, pq_e=16), "is not a 32-bit code"),
    (_packed_grad(batch=1024), "for at most 1023"),
    (_packed_grad(K=2 * load("small").array.psum_slots), "partial-sum slots"),
    (_packed(pq_t=True), "pq_t"),
    (_packed(batch=8, store_t=True, pq_t=True), "pq_t"),            # the pairs are the quantizer's codes: fq
])
def test_packed_gradients_that_cannot_run_are_rejected(op, message):
    with pytest.raises(ArrayOpError, match=message):
        describe(load("small"), op)


def test_packed_gradient_beats_unpack_two_inputs_each():
    """A packed gradient's beat carries inputs 2(s - 1) and 2s - 1; an odd K's
    padding input is dropped; the ones slot is the bias gradient's column."""
    from fixar.compiler.array_ops import unpack_grad

    cfg = load("small")
    C, gb = cfg.array.cols, cfg.adam.grad.bits
    op = _packed_grad(M=3, K=3, gstore=3)
    d = describe(cfg, op)
    pack = lambda vals: sum((v & ((1 << gb) - 1)) << (c * gb) for c, v in enumerate(vals))
    beats = [(0, 0, s, pack([10 * s + c for c in range(C)]), pack([-(10 * s + c) for c in range(C)]))
             for s in range(1, d.slots)]
    got = unpack_grad(cfg, op, d, beats)
    assert got.tolist() == [[10 + c, -(10 + c), 20 + c, 30 + c] for c in range(3)]
    with pytest.raises(AssertionError, match="unexpected gradient beat"):
        unpack_grad(cfg, op, d, beats + [(0, 0, 0, 0, 0)])        # the correction slot never leaves


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (13, 29)])
def test_weight_image_round_trips(shape):
    from fixar.compiler.array_ops import weight_from_image

    cfg = load("small")
    W = np.random.default_rng(3).integers(-2 ** 31, 2 ** 31, shape)
    assert np.array_equal(weight_from_image(cfg, weight_image(cfg, W), *shape, cfg.pe.weight.bits), W)


def test_descriptor_fields_are_the_array_instructions():
    """One list of the descriptor's fields (config.ISA_FIELDS): the host's
    Descriptor and the generated array's op_* ports both match it."""
    from fixar.compiler.array_ops import Descriptor
    from fixar.config import ISA_FIELDS, Opcode
    assert {f.name for f in dataclasses.fields(Descriptor)} == set(ISA_FIELDS[Opcode.ARRAY])


def test_a_packed_gradient_needs_an_even_array_side():
    """Feature pairs fill a beat's even and odd banks: an odd side cannot hold them."""
    small = load("small")
    m = small.memory
    mem = dataclasses.replace(m, **{k: getattr(m, k) // 12 * 12 for k in
                                    ("weight_words", "grad_words", "act_words_per_core", "bias_words",
                                     "xt_words_per_core")})
    odd = small.variant(name="odd_side", array=dataclasses.replace(small.array, rows=3, cols=3), memory=mem)
    with pytest.raises(ArrayOpError, match="array.rows and cols must be even"):
        describe(odd, _packed_grad())
