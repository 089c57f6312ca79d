"""Benches append their measured figures here; fixar.figures reads them back."""
from __future__ import annotations

import json
import os


def record(dut, rec: dict) -> None:
    """Log ``rec`` and append it as one JSON line to $FIXAR_BENCH_JSON (if set)."""
    dut._log.info("%s", rec)
    path = os.environ.get("FIXAR_BENCH_JSON")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")
