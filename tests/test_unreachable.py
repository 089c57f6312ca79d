"""No statement follows a return, raise, continue or break in its block:
such code never runs (session 44's array bench once kept half a test behind
a return, and the docs described it as run)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
JUMPS = (ast.Return, ast.Raise, ast.Continue, ast.Break)


def unreachable(source: str) -> list[int]:
    """Line numbers of statements that follow a jump in the same block."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        for field in ("body", "orelse", "finalbody"):
            block = getattr(node, field, None)
            if isinstance(block, list):
                lines += [nxt.lineno for st, nxt in zip(block, block[1:]) if isinstance(st, JUMPS)]
    return lines


def test_the_check_finds_code_after_a_return():
    assert unreachable("def f():\n    return 1\n    x = 2\n") == [3]
    assert unreachable("for i in r:\n    if i:\n        continue\n    y = i\n") == []


def test_no_code_follows_a_jump():
    found = {str(f.relative_to(ROOT)): lines for d in ("gen", "host", "tb", "tests")
             for f in sorted((ROOT / d).rglob("*.py")) if (lines := unreachable(f.read_text()))}
    assert not found, f"statements after a return/raise/continue/break never run: {found}"
