"""The malloc settings that keep numpy's temporaries in the heap: applied on
glibc, once, and left alone when the user set glibc's own variables."""
from __future__ import annotations

import os
import subprocess
import sys

PROBE = "from fixar.rl.heap import keep_temporaries_in_heap as k; print(k(), k())"


def _probe(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_applied_on_glibc_once():
    assert _probe() == "True True"


def test_the_users_malloc_settings_win():
    assert _probe(MALLOC_ARENA_MAX="2") == "False False"
