"""The program compiler's memory allocation, checked on the CPU: walking a
compiled program with a liveness analysis of its own, no two tensors live at
the same instruction share rows of one memory, every tensor lies inside its
memory, and the static tensors (weights, biases; the online weights'
gradients and moments in the gradient memory) never overlap; each network
lies in one group of the weight memory's RAMs, and the array products that
run beside an overlapped Adam pass read no row of its group. A planted
liveness bug (each tensor freed one instruction before its last reader) is
caught."""
from __future__ import annotations

import pytest

from fixar.compiler import program
from fixar.compiler.program import Adam, Grad, Matmul, Soft, Sync, Vec, compile_ddpg
from fixar.config import load, weight_groups

SHAPES = [  # (config, obs, act, hidden, batch)
    ("default", 3, 1, (16, 16), 8),
    ("default", 17, 6, (400, 300), 64),
    ("default", 11, 3, (64, 48), 512),
    ("small", 5, 3, (33, 7), 16),
    ("small", 3, 1, (32, 32), 16),
]


def _uses(ins) -> tuple[list[str], list[str]]:
    """(read, written) activation-like tensors of one instruction, from its
    fields (written here again, not taken from the compiler, so that a bug
    there is not copied into the check)."""
    if isinstance(ins, Matmul):
        return [ins.x], [t for t in (ins.y, ins.yt) if t is not None]
    if isinstance(ins, Grad):
        return [ins.d, ins.x if ins.x is not None else ins.ones], []
    if isinstance(ins, Vec):
        return [t for t in (ins.a, ins.b, ins.flag) if t is not None], [ins.y]
    assert isinstance(ins, (Adam, Soft, Sync)), f"unknown instruction {ins!r}"
    return [], []       # whole networks in the weight, gradient and bias memories: static


def _lives(instrs, inputs, outputs) -> dict[str, tuple[int, int]]:
    """Each tensor's first and last instruction: host inputs are live from
    the start, host outputs to the end (the host reads them after the run)."""
    life = {t: [0, 0] for t in inputs.values()}
    for i, ins in enumerate(instrs):
        reads, writes = _uses(ins)
        for t in reads:
            assert t in life, f"{t} is read at instruction {i} before anything writes it"
            life[t][1] = i
        for t in writes:
            life.setdefault(t, [i, i])[1] = i
    for t in outputs.values():
        life[t][1] = len(instrs)
    return {t: (a, b) for t, (a, b) in life.items()}


def _share_rows(a, b) -> bool:
    return a.space == b.space and a.base < b.base + b.rows and b.base < a.base + a.rows


def allocation_conflicts(cfg, p) -> list[str]:
    """Every broken rule of the allocation of compiled program ``p``."""
    R, C, mem = cfg.array.rows, cfg.array.cols, cfg.memory
    limits = {"W": mem.weight_words // C, "G": mem.grad_words // C, "B": mem.bias_words // C,
              "A": mem.act_words_per_core // R, "T": mem.xt_words_per_core // R}
    bad = [f"{t.name}: rows {t.base}..{t.base + t.rows - 1} outside the {limits[t.space]} of memory {t.space}"
           for t in p.tensors.values() if t.base < 0 or t.base + t.rows > limits[t.space]]
    static = [t for t in p.tensors.values() if t.space in ("W", "B")]
    for i, a in enumerate(static):
        for b in static[i + 1:]:
            if _share_rows(a, b):
                bad.append(f"static {a.name} and {b.name} share rows of memory {a.space}")
    online_w = [t for t in static if t.space == "W" and not t.name.split(".")[0].endswith("_t")]
    for i, t in enumerate(online_w):       # gradients and Adam moments: rows of G of their own
        if t.grad < 0 or t.grad + t.rows > limits["G"]:
            bad.append(f"{t.name}'s gradient rows {t.grad}..{t.grad + t.rows - 1} lie outside the gradient memory")
        bad += [f"{t.name} and {u.name} share gradient rows" for u in online_w[i + 1:]
                if t.grad < u.grad + u.rows and u.grad < t.grad + t.rows]
    bad += _group_conflicts(cfg, p)
    for instrs, inputs, outputs in ((p.instrs, p.inputs, p.outputs), (p.act_instrs, p.act_inputs, p.act_outputs)):
        life = _lives(instrs, inputs, outputs)
        names = sorted(life)
        for i, a in enumerate(names):
            ta, (s0, e0) = p.tensors[a], life[a]
            for b in names[i + 1:]:
                tb, (s1, e1) = p.tensors[b], life[b]
                if s0 <= e1 and s1 <= e0 and _share_rows(ta, tb):
                    both = max(s0, s1)
                    bad.append(f"{a} (live {s0}..{e0}) and {b} (live {s1}..{e1}) share rows of memory {ta.space} "
                               f"at instruction {both}")
    return bad


def _group_conflicts(cfg, p) -> list[str]:
    """A network and its target in one group of weight rows; the products
    between an overlapped ADAM and the next Sync read no weight of its group."""
    half = weight_groups(cfg)[1][0]
    group = lambda t: [t.base >= half, t.base + t.rows > half]
    bad = []
    for net in ("actor", "critic"):
        sides = {side for w, _, _ in p.nets[net] + p.nets[net + "_t"] for side in group(p.tensors[w])}
        if len(sides) != 1:
            bad.append(f"{net} and its target are not in one group of the weight memory")
    running = None
    for ins in p.instrs:
        if isinstance(ins, Adam) and ins.overlap:
            running = group(p.tensors[p.nets[ins.net][0][0]])[0]
        elif isinstance(ins, Sync):
            running = None
        elif isinstance(ins, (Matmul, Grad)):
            if running is not None and isinstance(ins, Matmul) and running in group(p.tensors[ins.w]):
                bad.append(f"{ins.w} is read beside an Adam pass on its group")
        elif running is not None:
            bad.append(f"{type(ins).__name__} runs before the overlapped Adam pass is synced")
    return bad


def _quantized_args(hidden):
    tops = {(net, i): 1 << 18 for net in ("actor", "critic") for i in range(1, len(hidden) + 1)}
    return {"quantized": True, "tops": tops, "tanh_limit": 1 << 15}


@pytest.mark.parametrize("quantized", [False, True], ids=["fxp32", "qat_phase2"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}-{s[1]}x{s[2]}-{s[3][0]}-{s[3][1]}-b{s[4]}")
def test_no_two_live_tensors_share_rows(shape, quantized):
    name, obs, act, hidden, batch = shape
    cfg = load(name)
    p = compile_ddpg(cfg, obs, act, hidden, batch, **(_quantized_args(hidden) if quantized else {}))
    assert p.instrs and p.act_instrs
    assert allocation_conflicts(cfg, p) == []


def _free_one_instruction_early(monkeypatch) -> None:
    """Plant a liveness bug in the compiler: each tensor's last read is
    reported to the allocator one instruction early, so its rows are free
    for the instruction that still reads it."""
    real_uses, real_allocate = program._uses, program._allocate
    seen: dict = {}

    def allocate(cfg, p, instrs, inputs, outputs=None):
        last = {t: i for i, ins in enumerate(instrs) for t in real_uses(ins)[0]}
        seen.update(pos={id(ins): i for i, ins in enumerate(instrs)}, instrs=instrs, last=last)
        return real_allocate(cfg, p, instrs, inputs, outputs)

    def uses(ins):
        i, instrs, last = seen["pos"][id(ins)], seen["instrs"], seen["last"]
        reads, writes = real_uses(ins)
        following = real_uses(instrs[i + 1])[0] if i + 1 < len(instrs) else []
        return [t for t in reads if last[t] != i] + [t for t in following if last[t] == i + 1], writes

    monkeypatch.setattr(program, "_allocate", allocate)
    monkeypatch.setattr(program, "_uses", uses)


def test_a_tensor_freed_one_instruction_early_is_caught(monkeypatch):
    cfg = load("default")
    _free_one_instruction_early(monkeypatch)
    p = compile_ddpg(cfg, 3, 1, (16, 16), 8)
    bad = allocation_conflicts(cfg, p)
    assert bad, "the planted liveness bug went unnoticed"
    assert any("share rows of memory A" in b for b in bad), bad


def test_a_sync_placed_after_the_critics_first_read_is_caught():
    """Planted: the Sync after the critic's forward pass on (s, mu) instead of
    before it, so that pass reads the critic while its Adam pass still runs."""
    cfg = load("default")
    p = compile_ddpg(cfg, 3, 1, (16, 16), 8)
    assert _group_conflicts(cfg, p) == []
    i = next(i for i, ins in enumerate(p.instrs) if isinstance(ins, Sync))
    p.instrs.insert(i + 2, p.instrs.pop(i))
    assert any("beside an Adam pass" in b for b in _group_conflicts(cfg, p))
