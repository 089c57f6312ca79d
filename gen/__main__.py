"""python -m fixar.gen [--config NAME|FILE.toml] [--out DIR] [--array]: generate Verilog."""
from __future__ import annotations

import argparse
import sys

from fixar.config import ConfigError, load
from fixar.gen.emit import emit


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fixar.gen", description=__doc__)
    ap.add_argument("--config", default="default", help="shipped config name or TOML file")
    ap.add_argument("--out", default="rtl", help="output folder (default: rtl)")
    ap.add_argument("--array", action="store_true",
                    help="also the whole array (fixar_array.v: cores, memories, controller; "
                         "about 2.4 MB for the default config, so not in rtl/)")
    args = ap.parse_args(argv)
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        manifest = emit(cfg, args.out, array=args.array)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, mod in manifest["modules"].items():
        print(f"wrote {args.out}/{mod['file']}  ({name}, config {cfg.name} {cfg.digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
