"""Bad inputs of `fixar` and `python -m fixar.gen` (issue 21): each is one
line on stderr naming the problem, exit code 2 (1 for a run that fails, such
as a full disk), no traceback, and nothing written or damaged. Each case runs
the real command; docs/cli.md lists the messages."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixar.config import CONFIG_DIR

FIXAR = [sys.executable, "-m", "fixar.cli"]
TINY = ["--hidden", "16,16", "--batch", "8", "--warmup", "100", "--eval-episodes", "1", "--eval-every", "100000"]


def run(*cmd, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*map(str, cmd)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def one_line_error(res: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    assert "Traceback" not in res.stderr, res.stderr
    lines = res.stderr.strip().splitlines()
    assert res.returncode == code and len(lines) == 1, (res.returncode, res.stderr)
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def tiny_memory_config(folder: Path) -> Path:
    """The default engine with memories of a few rows each."""
    p = folder / "tiny.toml"
    p.write_text('name = "tiny"\n[memory]\nweight_words = 1024\ngrad_words = 1024\nact_words_per_core = 512\n'
                 'bias_words = 64\nxt_words_per_core = 512\n')
    return p


def latin1_config(folder: Path) -> Path:
    p = folder / "latin1.toml"
    p.write_bytes('name = "caf\u00e9"\n'.encode("latin-1"))
    return p


# (arguments of `fixar train` or `fixar eval`, what the message must say); {tmp} is a scratch folder
CASES = {
    # 1. a QAT switch inside the warm-up would fix the 16-bit ranges of an untrained network
    "qat_default_switch_in_warmup": (["train", "--hidden", "32,32", "--precision", "qat", "--steps", "1500"],
                                     ["--qat-delay", "step 750", "warm-up at step 1000"]),
    "qat_switch_at_warmup_end": (["train", "--precision", "qat", "--qat-delay", "1000", "--steps", "3000"],
                                 ["--qat-delay", "step 1000", "warm-up at step 1000"]),
    "qat_switch_before_first_batch": (["train", "--precision", "qat", "--warmup", "10", "--qat-delay", "50"],
                                      ["--qat-delay", "step 50", "warm-up at step 64"]),
    "qat_delay_0": (["train", "--precision", "qat", "--qat-delay", "0"], ["--qat-delay", ">= 1, got 0"]),
    "qat_delay_without_qat": (["train", "--qat-delay", "500"], ["--qat-delay", "only with --precision qat"]),
    # 6. networks the engine's memories cannot hold
    "hidden_too_big": (["train", "--hidden", "1100,1100", "--steps", "3000"],
                       ["--hidden 1100,1100 --batch 64 do not fit", "weight memory"]),
    "batch_too_big_for_memory": (["train", "--hidden", "400,300", "--batch", "1024", "--steps", "3000"],
                                 ["--hidden 400,300 --batch 1024 do not fit", "feature-major memory"]),
    "tiny_memory_config": (["train", "--config", "{tmp}/tiny.toml"], ["do not fit the engine of config 'tiny'"]),
    # 8. runs that could never train
    "batch_beyond_replay": (["train", "--batch", "2000000"], ["--batch 2000000", "replay buffer"]),
    "batch_beyond_steps": (["train", "--batch", "5000", "--steps", "2000"], ["--batch 5000 --steps 2000", "never"]),
    "warmup_beyond_steps": (["train", "--warmup", "5000", "--steps", "400"], ["--warmup 5000 --steps 400", "never"]),
    # 9. where a run cannot write
    "out_is_a_file": (["train", "--out", "{tmp}/afile"], ["--out", "afile: is a file"]),
    "out_below_a_file": (["train", "--out", "{tmp}/afile/run"], ["--out", "is below", "afile, which is a file"]),
    "config_is_a_folder": (["train", "--config", "{tmp}"], ["--config", "is a folder"]),
    # 10. evaluation episodes
    "eval_zero_episodes": (["eval", "{tmp}", "--episodes", "0"], ["--episodes", ">= 1, got 0"]),
    "eval_negative_episodes": (["eval", "{tmp}", "--episodes", "-3"], ["--episodes", ">= 1, got -3"]),
    # 11. malformed options
    "hidden_abc": (["train", "--hidden", "abc"], ["--hidden", "'abc'"]),
    "hidden_trailing_comma": (["train", "--hidden", "400,"], ["--hidden", "'400,'"]),
    "seed_negative": (["train", "--seed", "-1"], ["--seed", ">= 0, got -1"]),
    "config_not_utf8": (["train", "--config", "{tmp}/latin1.toml"], ["--config", "latin1.toml", "not a UTF-8"]),
    "config_to_float": (["train", "--backend", "float", "--config", "small"], ["--config", "float backend"]),
    "multiplier_to_float": (["train", "--backend", "float", "--multiplier", "mbm"], ["--multiplier", "float backend"]),
    "multiplier_unknown": (["train", "--multiplier", "booth"], ["--multiplier", "invalid choice: 'booth'"]),
    "xclbin_to_float": (["train", "--backend", "float", "--xclbin", "x.xclbin"], ["--xclbin", "xrt backend"]),
    "fp32_on_golden": (["train", "--backend", "golden", "--precision", "fp32"], ["--precision fp32", "float"]),
    "unknown_config": (["train", "--config", "nosuch"], ["--config", "neither a shipped config"]),
    "errors_16_bit_on_rtl": (["train", "--backend", "rtl", "--config", "qat16e", "--precision", "qat", "--hidden",
                              "32,32", "--batch", "16", "--warmup", "100", "--steps", "400"],
                             ["config qat16e", "16-bit backward errors", "golden backend only"]),
    "resume_and_force": (["train", "--resume", "--force"], ["--resume and --force"]),
    "resume_nothing": (["train", "--resume"], ["no checkpoint to resume from"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, case):
    args, needles = CASES[case]
    (tmp_path / "afile").write_text("not a folder\n")
    tiny_memory_config(tmp_path)
    latin1_config(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if args[0] == "train" and "--out" not in args:
        args += ["--out", tmp_path / "run"]
    one_line_error(run(*FIXAR, *args), *needles)
    assert sorted(p.name for p in tmp_path.iterdir()) == before       # no run folder, nothing else
    assert (tmp_path / "afile").read_text() == "not a folder\n"


def test_a_new_run_into_a_run_folder_is_refused_unless_resumed_or_forced(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.csv").write_text("an earlier run's log\n")
    (out / "checkpoint.npz").write_bytes(b"an earlier run's checkpoint")
    args = [*FIXAR, "train", "--backend", "float", *TINY, "--steps", "150", "--out", out]
    one_line_error(run(*args), "--out", "already holds a run (checkpoint.npz, log.csv)", "--resume", "--force")
    assert (out / "log.csv").read_text() == "an earlier run's log\n"
    res = run(*args, "--force")
    assert res.returncode == 0, res.stderr
    assert (out / "log.csv").read_text().startswith("step,episode")
    assert run(*args[:-4], "--steps", "300", "--out", out, "--resume").returncode == 0
    one_line_error(run(*args), "already holds a run")


def _without_root_powers():
    """A command prefix that takes from root the power to write anywhere (the
    capabilities that bypass file permissions); None when that cannot be done."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search"] if setpriv else None


def test_a_read_only_run_folder_is_one_line(tmp_path):
    prefix = _without_root_powers()
    if prefix is None:
        pytest.skip("root without setpriv: no way to meet a read-only folder")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cmd = [*prefix, *FIXAR, "train", *TINY]
        one_line_error(run(*cmd, "--out", ro), "--out", "the folder is not writable")
        one_line_error(run(*cmd, "--out", ro / "run"), "--out", "where it would be made, is not writable")
        assert not any(ro.iterdir())
    finally:
        ro.chmod(0o755)


def test_a_full_disk_is_one_line_and_leaves_the_last_checkpoint(tmp_path, monkeypatch, capsys):
    """ENOSPC from the checkpoint writer at the second checkpoint (a unit
    test: a real full disk is out of reach): exit 1, one line, the first
    checkpoint intact and no temporary file."""
    import json

    from fixar.cli import main

    real_savez, calls = np.savez, []

    def savez(f, *args, **kw):
        calls.append(f.name)
        if len(calls) == 2:
            f.write(b"PK\x03\x04 the start of a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f.name)
        return real_savez(f, *args, **kw)

    monkeypatch.setattr(np, "savez", savez)
    rc = main(["train", "--backend", "float", *TINY, "--steps", "400", "--checkpoint-every", "150", "--out",
               str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and len(err.strip().splitlines()) == 1, err
    assert "checkpoint.npz.tmp: No space left on device" in err and "last checkpoint" in err
    with np.load(tmp_path / "checkpoint.npz") as z:
        assert json.loads(bytes(z["__header__"]))["step"] == 150
    assert not (tmp_path / "checkpoint.npz.tmp").exists()


def test_help_shows_defaults_every_preset_and_why_make_train_differs():
    res = run(*FIXAR, "train", "--help")
    assert res.returncode == 0
    text = " ".join(res.stdout.split())
    for default in ("(default: 20000)", "(default: 400,300)", "(default: 64)", "(default: runs/latest)",
                    "(default: 0.0001)", "(default: Pendulum-v1)", "(default: default)"):
        assert default in text, default
    presets = ["default", *sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))]
    assert f"a shipped name ({', '.join(presets)})" in text
    assert "`make train` runs a quicker Pendulum demo" in text


def test_generator_errors_are_one_line_and_it_never_writes_rtl_by_default(tmp_path):
    gen = [sys.executable, "-m", "fixar.gen"]
    (tmp_path / "afile").write_text("x")
    one_line_error(run(*gen, "--config", tmp_path, "--out", tmp_path / "out"), "--config", "is a folder")
    one_line_error(run(*gen, "--out", tmp_path / "afile"), "--out", "is a file")
    one_line_error(run(*gen, "--out", tmp_path / "afile" / "sub"), "--out", "is below")
    one_line_error(run(*gen, "--config", latin1_config(tmp_path)), "latin1.toml", "not a UTF-8")
    res = run(*gen, "--config", "small", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert not (tmp_path / "rtl").exists()
    (folder,) = (tmp_path / "build" / "rtl").iterdir()
    assert folder.name.startswith("small-") and any(folder.glob("*.v"))


def test_precision_fp32_alone_selects_the_float_backend(tmp_path):
    import json

    res = run(*FIXAR, "train", "--precision", "fp32", *TINY, "--steps", "150", "--out", tmp_path)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "result.json").read_text())["backend"] == "float"
