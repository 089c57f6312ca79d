"""python -m fixar.gen [--config NAME|FILE.toml] [--out DIR] [--array]: generate Verilog."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fixar.config import ConfigError, load
from fixar.gen.emit import emit


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):     # one line, as every other error here
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _load(name: str):
    """fixar.config.load with the file system's errors naming the file."""
    try:
        return load(name)
    except IsADirectoryError:
        raise ConfigError(f"--config {name}: is a folder, not a config (a shipped name or a TOML file)") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--config {name}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); a config is "
                          "TOML") from None
    except OSError as exc:
        raise ConfigError(f"--config {name}: cannot read the config ({exc.strerror})") from None


def _check_out(out: str) -> None:
    """--out must be a folder or a place one can be made: not a file, nor below one."""
    for p in (Path(out), *Path(out).parents):
        if p.exists():
            if not p.is_dir():
                below = "is a file" if p == Path(out) else f"is below {p}, which is a file"
                raise ConfigError(f"--out {out}: {below}, not a folder")
            return


def main(argv=None) -> int:
    ap = _Parser(prog="python -m fixar.gen", description=__doc__)
    ap.add_argument("--config", default="default", help="shipped config name or TOML file (default: default)")
    # no default of rtl/: that folder is committed and checked against a fresh generation (make verilog
    # writes it), so a variant must not land there by accident
    ap.add_argument("--out", default=None,
                    help="output folder (default: build/rtl/NAME-DIGEST of the config; `make verilog` writes rtl/)")
    ap.add_argument("--array", action="store_true",
                    help="also the whole array (fixar_array.v: cores, memories, controller; "
                         "about 2.4 MB for the default config, so not in rtl/)")
    args = ap.parse_args(argv)
    try:
        cfg = _load(args.config)
        out = args.out or str(Path("build") / "rtl" / f"{cfg.name}-{cfg.digest}")
        _check_out(out)
        manifest = emit(cfg, out, array=args.array)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    for name, mod in manifest["modules"].items():
        print(f"wrote {out}/{mod['file']}  ({name}, config {cfg.name} {cfg.digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
