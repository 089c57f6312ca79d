"""Stopping and continuing `fixar train` (issue 21), each through a real
`fixar` process: SIGINT and SIGTERM stop at a step boundary with a checkpoint
equal to a clean run's stopped there, and the resumed run ends exactly as an
uninterrupted one; a second signal stops at once and leaves the previous
checkpoint intact; a run killed before its first log row resumes; the config
and the QAT switch of a run are kept across a resume; `fixar eval` reads the
very checkpoint it is given, from any folder; the live progress bar."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fixar.config import CONFIG_DIR

FIXAR = [sys.executable, "-m", "fixar.cli"]
# `fixar train` with tiny networks and a short warm-up: a few hundred steps take seconds
TINY = ["train", "--hidden", "16,16", "--batch", "8", "--warmup", "100", "--eval-episodes", "1"]


def fixar(*args, cwd=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([*FIXAR, *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def ok(res: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    return res


def start(*args, **kw) -> subprocess.Popen:
    # SIGINT back to its default in the child: a shell that starts this run in
    # the background hands it down ignored, and fixar leaves an ignored signal alone
    return subprocess.Popen([*FIXAR, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL), **kw)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"fixar exited ({proc.returncode}) before writing {path}: {proc.stderr.read()}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"no {path} after {timeout} s")
        time.sleep(0.005)


def checkpoint(path: Path) -> tuple[dict, dict]:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return json.loads(bytes(arrays.pop("__header__")).decode()), arrays


def assert_same_arrays(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, f"differ in {differ}"


@pytest.mark.parametrize("sig, backend", [(signal.SIGINT, "golden"), (signal.SIGTERM, "float")],
                         ids=["SIGINT-golden", "SIGTERM-float"])
def test_a_signal_stops_at_a_step_boundary_and_the_run_resumes_exactly(tmp_path, sig, backend):
    common = [*TINY, "--backend", backend, "--eval-every", "100000", "--checkpoint-every", "150", "--seed", "1"]
    run, clean, straight, total = tmp_path / "run", tmp_path / "clean", tmp_path / "straight", 700
    proc = start(*common, "--steps", 100_000, "--out", run)
    wait_for(run / "checkpoint.npz", proc)
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"fixar train did not stop on {sig.name}") from None
    assert proc.returncode == 128 + sig, err
    assert f"{sig.name}: stopping after this step" in err and "checkpoint saved" in err and "Traceback" not in err
    header, arrays = checkpoint(run / "checkpoint.npz")
    k = header["step"]
    assert 150 <= k < total and not (run / "checkpoint.npz.tmp").exists()

    # the checkpoint is the one a clean run of k steps ends with (but for the
    # evaluation that run makes at its end)
    ok(fixar(*common, "--steps", k, "--out", clean))
    clean_header, clean_arrays = checkpoint(clean / "checkpoint.npz")
    assert_same_arrays(arrays, clean_arrays)
    for key in ("step", "episode", "ep_return", "rng", "config"):
        assert header[key] == clean_header[key], key

    # resumed, it ends as the uninterrupted run: weights, log and evaluations
    ok(fixar(*common, "--steps", total, "--out", run, "--resume"))
    ok(fixar(*common, "--steps", total, "--out", straight))
    assert_same_arrays(checkpoint(run / "checkpoint.npz")[1], checkpoint(straight / "checkpoint.npz")[1])
    assert (run / "log.csv").read_text() == (straight / "log.csv").read_text()
    assert json.loads((run / "result.json").read_text())["evals"] == \
        json.loads((straight / "result.json").read_text())["evals"]


# The first Ctrl-C comes in step 250 (a real SIGINT the process sends itself);
# the second during the checkpoint that stop writes, or in the same step.
SECOND_CTRL_C = """
import os, signal, sys
import numpy as np
import fixar.rl.replay
from fixar.cli import main

WHEN = sys.argv[1]
real_add, real_savez = fixar.rl.replay.Replay.add, np.savez
def add(self, *a):
    real_add(self, *a)
    if self.n == 250:
        os.kill(os.getpid(), signal.SIGINT)
        if WHEN == "step":
            os.kill(os.getpid(), signal.SIGINT)
def savez(f, *a, **k):
    if k["__header__"] is not None and b'"step": 250' in bytes(k["__header__"]):
        f.write(b"PK\\x03\\x04 half a checkpoint")
        os.kill(os.getpid(), signal.SIGINT)
    return real_savez(f, *a, **k)
fixar.rl.replay.Replay.add = add
np.savez = savez
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("when", ["save", "step"])
def test_a_second_ctrl_c_stops_at_once_and_keeps_the_previous_checkpoint(tmp_path, when):
    args = [*TINY, "--backend", "float", "--steps", 400, "--checkpoint-every", 200, "--eval-every", 100_000,
            "--out", tmp_path]
    # SIGINT at its default in the child, as at a terminal (a background job inherits it ignored)
    res = subprocess.run([sys.executable, "-c", SECOND_CTRL_C, when, *map(str, args)], capture_output=True,
                         text=True, timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert res.returncode == 130, res.stderr
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith("SIGINT: stopping after this step") and len(lines) == 2, res.stderr
    what = "abandoning the checkpoint being written" if when == "save" else "without saving"
    assert lines[1] == f"second SIGINT: stopped at once, {what}; {tmp_path / 'checkpoint.npz'} holds step 200, intact"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("checkpoint")) == ["checkpoint.npz"]
    assert checkpoint(tmp_path / "checkpoint.npz")[0]["step"] == 200
    if when == "save":
        ok(fixar(*args, "--resume"))


def test_a_run_killed_before_its_first_log_row_resumes(tmp_path):
    """SIGKILL after the first checkpoint (step 50), long before the first
    episode ends (step 200): --resume continues, and the log ends as an
    uninterrupted run's."""
    common = [*TINY, "--backend", "float", "--eval-every", 50, "--eval-episodes", 2, "--checkpoint-every", 50]
    run, straight = tmp_path / "run", tmp_path / "straight"
    proc = start(*common, "--steps", 100_000, "--out", run)
    wait_for(run / "checkpoint.npz", proc)
    proc.kill()
    proc.communicate()
    assert checkpoint(run / "checkpoint.npz")[0]["step"] < 200
    ok(fixar(*common, "--steps", 300, "--out", run, "--resume"))
    ok(fixar(*common, "--steps", 300, "--out", straight))
    assert (run / "log.csv").read_text() == (straight / "log.csv").read_text()
    assert (run / "learning_curve.png").exists()


def _copy_preset(name: str, dest: Path, new_name: str) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    text = (CONFIG_DIR / f"{name}.toml").read_text().replace(f'name = "{name}"', f'name = "{new_name}"')
    dest.write_text(text)
    return dest


def test_resume_refuses_another_config_or_an_edited_one(tmp_path):
    cfg = _copy_preset("small", tmp_path / "mine.toml", "mine")
    common = [*TINY, "--eval-every", 100_000, "--out", tmp_path / "run"]
    ok(fixar(*common, "--steps", 120, "--config", cfg))
    res = fixar(*common, "--steps", 200, "--config", "default", "--resume")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "trained with config 'mine'" in res.stderr and "is 'default'" in res.stderr
    cfg.write_text(cfg.read_text() + "\n[prng]\nseed = 12345\n")        # same file, other engine
    res = fixar(*common, "--steps", 200, "--config", cfg, "--resume")
    assert res.returncode == 2 and len(res.stderr.splitlines()) == 1, res.stderr
    assert "trained with config 'mine' (digest" in res.stderr and "Traceback" not in res.stderr


def test_a_relative_config_is_stored_resolved_and_eval_reads_the_file_it_is_given(tmp_path):
    """The run's config is a relative path; `fixar eval` from another folder
    still finds it. A copy of an earlier checkpoint is evaluated at its own
    step, not at the run's latest."""
    _copy_preset("small", tmp_path / "cfgs" / "mine.toml", "mine")
    common = [*TINY, "--eval-every", 100_000, "--checkpoint-every", 100, "--out", "run", "--config", "cfgs/mine.toml"]
    ok(fixar(*common, "--steps", 150, cwd=tmp_path))
    shutil.copy(tmp_path / "run" / "checkpoint.npz", tmp_path / "run" / "step150.npz")
    ok(fixar(*common, "--steps", 300, "--resume", cwd=tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    res = ok(fixar("eval", tmp_path / "run" / "step150.npz", "--episodes", 1, cwd=elsewhere))
    assert "step 150:" in res.stdout
    res = ok(fixar("eval", tmp_path / "run", "--episodes", 1, cwd=elsewhere))
    assert "step 300:" in res.stdout


def test_the_qat_switch_stays_where_it_was_when_a_resume_extends_the_run(tmp_path):
    common = [*TINY, "--precision", "qat", "--eval-every", 100_000, "--out", tmp_path]
    res = ok(fixar(*common, "--steps", 300))
    assert "step 150: QAT switch" in res.stdout          # half of --steps
    res = ok(fixar(*common, "--steps", 500, "--resume"))
    assert "QAT switch" not in res.stdout
    assert checkpoint(tmp_path / "checkpoint.npz")[0]["settings"]["qat_delay"] == 150


def test_progress_is_a_live_bar_on_a_terminal_and_plain_lines_in_a_log(tmp_path):
    import pty

    args = [*TINY, "--backend", "float", "--steps", 300, "--eval-every", 100_000]
    master, slave = pty.openpty()
    proc = subprocess.Popen([*FIXAR, *map(str, args), "--out", str(tmp_path / "tty")], stdout=slave, stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:        # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=300) == 0
    shown = b"".join(chunks).decode(errors="replace")
    assert "\r[" in shown and "300/300 100%" in shown and "steps/s" in shown, shown[-2000:]
    assert "\nstep 300/300" not in shown
    res = ok(fixar(*args, "--out", tmp_path / "log"))       # a pipe: plain lines, no carriage returns
    assert "step 300/300" in res.stdout and "\r" not in res.stdout
