"""Checks of the inputs of a run that touch the file system: the engine config
(a shipped name or a TOML file) and the run folder. Each problem is one
:class:`InputError` whose message names the option and the file, so the
command line prints it as one line; nothing here writes anything but the
folder a run asks for."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from fixar.config import CONFIG_DIR, ConfigError, FixarConfig, load

# what `fixar train` writes into its run folder (the ones --force removes)
RUN_FILES = ("checkpoint.npz", "checkpoint.npz.tmp", "log.csv", "log.tmp", "result.json", "learning_curve.png")
RUN_DIRS = ("tensorboard",)


class InputError(ValueError):
    """A bad input the user can fix; the message names it."""


def preset_names() -> list[str]:
    """The shipped configs, by the name --config takes."""
    return ["default", *sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))]


def is_preset(name: str) -> bool:
    return name == "default" or (CONFIG_DIR / f"{name}.toml").is_file()


def resolve_config(name: str) -> str:
    """A preset name as it is; a file as an absolute path, so that a checkpoint
    that stores it can be evaluated or resumed from another folder."""
    if is_preset(name):
        return name
    return str(Path(name).expanduser().resolve())


def load_config(name: str) -> FixarConfig:
    """fixar.config.load with the file system's errors as ConfigErrors naming
    the file (a folder, undecodable bytes or no permission would otherwise be
    tracebacks from deep inside tomllib or pathlib)."""
    try:
        return load(name)
    except IsADirectoryError:
        raise ConfigError(f"{name}: is a folder, not a config (a shipped name {preset_names()} or a TOML file)") \
            from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{name}: not a UTF-8 text file (byte {exc.start}: {exc.reason}); a config is TOML") \
            from None
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read the config ({exc.strerror})") from None


def engine_config(name: str, multiplier: str | None = None) -> FixarConfig:
    """The run's engine config: :func:`load_config`, with the PE's
    multiplier replaced when ``multiplier`` is given (FixarConfig.with_multiplier)."""
    cfg = load_config(name)
    return cfg if multiplier is None else cfg.with_multiplier(multiplier)


def _blocking_file(folder: Path) -> Path | None:
    """The folder itself or the first of its parents that is a file, if any."""
    for p in (folder, *folder.parents):
        if p.exists():
            return None if p.is_dir() else p
    return None


def check_out(out: str, resume: bool, force: bool) -> Path:
    """The run folder ``out`` can take this run: not a file nor below one,
    writable, and (unless resuming or forced) not holding another run that this
    one would overwrite. Writes nothing (the loop makes the folder; clear_run
    removes an old run)."""
    if not out.strip():
        raise InputError("--out: empty; give the run's folder")
    folder = Path(out)
    blocker = _blocking_file(folder)
    if blocker is not None:
        what = "is a file" if blocker == folder else f"is below {blocker}, which is a file"
        raise InputError(f"--out {out}: {what}, not a folder")
    if not resume:
        held = [n for n in (*RUN_FILES, *RUN_DIRS) if (folder / n).exists()]
        if held and not force:
            raise InputError(f"--out {out}: already holds a run ({', '.join(held)}); continue it with --resume, "
                             "overwrite it with --force, or choose another --out")
    # the folder, or the parent it will be made in, must be writable (os.access
    # answers for root too, which may write anywhere but on a read-only mount)
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "the folder" if existing == folder else f"{existing}, where it would be made,"
        raise InputError(f"--out {out}: {where} is not writable")
    return folder


def clear_run(folder: Path) -> None:
    """--force: remove the files of the run that was in ``folder`` (only
    those `fixar train` writes), so that nothing of it can be resumed or
    plotted with the new run's."""
    for n in RUN_FILES:
        (folder / n).unlink(missing_ok=True)
    for n in RUN_DIRS:
        shutil.rmtree(folder / n, ignore_errors=True)
