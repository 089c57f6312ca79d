"""Checkpoints: one .npz holding the arrays (backend state, replay buffer, the
current episode's actions) and a JSON header (format, version, the run's
settings, the loop's counters and generator state). Written to a temporary
file and renamed, so an interrupt never leaves half a checkpoint; read back
with every mismatch or corruption reported, never half-loaded."""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

FORMAT, VERSION = "fixar-checkpoint", 1
# Settings that must match for a resume to continue the same run; steps,
# evaluation and checkpoint intervals and the output folder may change.
MUST_MATCH = ("env", "backend", "seed", "warmup", "replay_size", "precision", "qat_delay", "hyper")


class CheckpointError(ValueError):
    pass


def save_checkpoint(path: Path, run, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write to ``path``.tmp, then rename: a reader sees the old checkpoint or
    the new one, never a part. Whatever stops the write (a full disk, a second
    Ctrl-C) removes the temporary file, so the previous checkpoint is the only
    one left, intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "version": VERSION, "settings": run.to_dict(), **meta}
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, __header__=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
            f.flush()
            os.fsync(f.fileno())     # the data on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_header(path: Path) -> dict:
    """A checkpoint's JSON header (settings, counters), without its arrays."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["__header__"]).decode())
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint") from None
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable fixar checkpoint (corrupt or truncated: {exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fixar checkpoint")
    return header


def load_checkpoint(path: Path, run, config=None) -> tuple[dict, dict[str, np.ndarray]]:
    """The header and arrays of the checkpoint at ``path``, refused when it is
    of another run: a MUST_MATCH setting differs, or (given ``config``, the
    engine config of this run) the config it was trained with, compared by
    name and digest, so an edited TOML file under the same path is caught."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no checkpoint to resume from")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(bytes(arrays.pop("__header__")).decode())
    except (zipfile.BadZipFile, ValueError, KeyError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not a readable fixar checkpoint (corrupt or truncated: {exc})") from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a fixar checkpoint")
    if header.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {header.get('version')}, this fixar reads {VERSION}")
    saved, now = header["settings"], json.loads(json.dumps(run.to_dict()))  # tuples as JSON lists
    diff = [k for k in MUST_MATCH if saved.get(k) != now.get(k)]
    if diff:
        detail = ", ".join(f"{k}: checkpoint {saved.get(k)!r} vs now {now.get(k)!r}" for k in diff)
        raise CheckpointError(f"{path}: checkpoint is of a different run ({detail})")
    was = header.get("config")        # absent in checkpoints written before it was stored
    if config is not None and was is not None and was.get("digest") != config.digest:
        raise CheckpointError(f"{path}: the checkpoint was trained with config {was.get('name')!r} (digest "
                              f"{was.get('digest')}), this run's --config {run.config} is {config.name!r} (digest "
                              f"{config.digest}); resume with the checkpoint's config (--config, --multiplier), "
                              "or start a new run")
    return header, arrays


def read_settings(path: Path) -> dict:
    """The run settings stored in a checkpoint (for `fixar eval`)."""
    return read_header(path)["settings"]


def check_backend_state(expected: dict, got: dict, opaque: tuple[str, ...] = ()) -> None:
    """A backend's saved arrays must all be there with this run's shapes
    (``opaque`` entries are serialised blobs whose length varies)."""
    missing = sorted(set(expected) - set(got))
    if missing:
        raise ValueError(f"checkpoint lacks {missing[:3]}{'...' if len(missing) > 3 else ''} "
                         "(a checkpoint of another backend?)")
    for k, ref in expected.items():
        if k not in opaque and np.shape(got[k]) != np.shape(ref):
            raise ValueError(f"checkpoint entry {k} has shape {np.shape(got[k])}, this network needs "
                             f"{np.shape(ref)} (different environment or layer sizes?)")
