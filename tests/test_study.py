"""The reward study on Ray (fixar.rl.study, fixar.rl.study_ray): a tiny
study on a local Ray and on a Ray cluster given by its address, the table it
gathers, finished runs not redone, Ctrl-C saving every run and a second
invocation finishing them exactly as an uninterrupted study would, and the
errors before any run."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from fixar.rl.study import main as study

ray = pytest.importorskip("ray", reason="the study runs on Ray: make setup installs the study extra")
TINY = ["--seeds", "1", "--hidden", "8,8", "--eval-episodes", "1"]
# a hang guard for a whole study command, not a speed limit: with other jobs on the cores
# (CI's second worker and a bench) one of the Ctrl-C test's commands took over 300 s here
STUDY_HANG_S = 900


def _run_dir(out: Path, env: str, precision: str) -> Path:
    return out / "runs" / env / precision / "seed0"


def test_tiny_study_on_local_ray_gathers_the_table(tmp_path, capsys):
    """2 envs x 2 precisions x 1 seed, 300 steps, on a local Ray, and fxp32
    also with MBM's approximate multiplier (fp32 has none): every run's
    result comes back into the table, README and curves; the golden runs use
    --config; a second invocation reuses the finished runs without Ray."""
    envs = ["Pendulum-v1", "MountainCarContinuous-v0"]
    args = ["--envs", ",".join(envs), "--precisions", "fp32,fxp32", "--multipliers", "exact,mbm", "--steps", "300",
            "--jobs", "2", "--config", "adam_rne", "--out", str(tmp_path), *TINY]
    assert study(args) == 0
    printed = capsys.readouterr().out
    assert "6 run(s) on a local Ray with 2 CPU(s)" in printed
    # never more runs at once than CPUs: Ray would start a queued run whenever one waits on it
    (peak,) = re.findall(r"study: at most (\d+) run\(s\) at once \(2 slot\(s\) of 1 CPU\(s\)\)", printed)
    assert 1 <= int(peak) <= 2
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["config"] == "adam_rne" and results["eval_every"] == 30
    assert set(results["table"]) == set(envs)
    md = (tmp_path / "README.md").read_text()
    for env in envs:
        assert set(results["table"][env]) == {"fp32", "fxp32", "fxp32_mbm"}
        mbm = json.loads((_run_dir(tmp_path, env, "fxp32_mbm") / "result.json").read_text())
        assert mbm["evals"] != json.loads((_run_dir(tmp_path, env, "fxp32") / "result.json").read_text())["evals"]
        assert f"| {env} | fxp32_mbm |" in (tmp_path / "README.md").read_text()
        for p in ("fp32", "fxp32"):
            res = json.loads((_run_dir(tmp_path, env, p) / "result.json").read_text())
            cell = results["table"][env][p]
            assert cell["final"] == [res["final_eval_return"]] and np.isfinite(cell["final_mean"])
            late = [r for s, r in res["evals"] if s > 150]
            assert 0 < len(late) < len(res["evals"]) and cell["second_half"] == [pytest.approx(np.mean(late))]
            assert f"| {env} | {p} |" in md
        assert (tmp_path / f"curves_{env}.png").stat().st_size > 0
    assert "Engine config of the fixed-point runs: `adam_rne`" in md
    with np.load(_run_dir(tmp_path, envs[0], "fxp32") / "checkpoint.npz") as z:
        assert json.loads(z["__header__"].tobytes())["settings"]["config"] == "adam_rne"
    result = _run_dir(tmp_path, envs[1], "fxp32") / "result.json"
    stamp = result.stat().st_mtime_ns
    assert study(args) == 0
    assert "6 runs, 6 already done" in capsys.readouterr().out and result.stat().st_mtime_ns == stamp


def _study_cmd(out: Path, precisions: str = "fp32,fxp32", jobs: int = 2) -> list[str]:
    return [sys.executable, "-m", "fixar.rl.study", "--envs", "Pendulum-v1", "--precisions", precisions,
            "--steps", "6000", "--eval-every", "2000", "--jobs", str(jobs), "--out", str(out), *TINY]


def _start_study(out: Path) -> subprocess.Popen:
    """The study as at a terminal: SIGINT at its default (a shell's background job, CI's for one,
    would pass it on ignored, and an ignored Ctrl-C stays ignored)."""
    return subprocess.Popen(_study_cmd(out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _rows(log_csv: Path) -> int:
    try:
        return max(len(log_csv.read_text().splitlines()) - 1, 0)
    except OSError:
        return 0


def test_ctrl_c_saves_every_run_and_the_study_resumes_exactly(tmp_path):
    """Ctrl-C while both runs train: exit 130, every unfinished run stopped at
    a step boundary with its checkpoint (the fast fp32 run may finish before
    the request reaches it; the golden one cannot); the same command again
    resumes them and ends with exactly the evaluations of an uninterrupted
    study."""
    cut = tmp_path / "cut"
    proc = _start_study(cut)
    logs = [_run_dir(cut, "Pendulum-v1", p) / "log.csv" for p in ("fp32", "fxp32")]
    deadline = time.monotonic() + 180
    while not all(_rows(f) >= 5 for f in logs) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, out[-3000:]
    stopped = [f.parent for f in logs if not (f.parent / "result.json").exists()]
    assert _run_dir(cut, "Pendulum-v1", "fxp32") in stopped, out
    assert f"{len(stopped)} run(s) saved their checkpoints" in out, out
    assert out.count("interrupted by SIGINT at step") == len(stopped), out
    assert all((d / "checkpoint.npz").exists() for d in stopped)
    again = subprocess.run(_study_cmd(cut), capture_output=True, text=True, timeout=STUDY_HANG_S)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    straight = subprocess.run(_study_cmd(tmp_path / "straight"), capture_output=True, text=True,
                              timeout=STUDY_HANG_S)
    assert straight.returncode == 0, straight.stderr[-2000:]
    for p in ("fp32", "fxp32"):
        got = json.loads((_run_dir(cut, "Pendulum-v1", p) / "result.json").read_text())["evals"]
        want = json.loads((_run_dir(tmp_path / "straight", "Pendulum-v1", p) / "result.json").read_text())["evals"]
        assert got == want and len(want) == 3, p


def test_sigterm_stops_a_study_started_in_the_background(tmp_path):
    """`kill` (a batch system's stop) takes the same path as Ctrl-C, after
    Ray has put its own SIGTERM handler in the driver, and also for a study
    started in the background, whose processes inherit SIGINT ignored (the
    runs' stop channel): the golden run stops before its end and saves its
    checkpoint, exit 130; the run queued behind it (one CPU) is never handed
    to Ray."""
    out_dir = tmp_path / "term"
    proc = subprocess.Popen(_study_cmd(out_dir, "fxp32,fp32", jobs=1), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    log = _run_dir(out_dir, "Pendulum-v1", "fxp32") / "log.csv"
    deadline = time.monotonic() + 180
    while _rows(log) < 5 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 130, out[-3000:]
    assert "Pendulum-v1/fxp32/seed0: interrupted by SIGINT at step" in out, out[-3000:]
    assert (log.parent / "checkpoint.npz").exists() and not (log.parent / "result.json").exists()
    assert "Pendulum-v1/fp32/seed0: not started (the study is stopping)" in out, out[-3000:]
    assert not (_run_dir(out_dir, "Pendulum-v1", "fp32") / "log.csv").exists()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the Ray head did not open port {port}")


def test_study_runs_on_a_ray_cluster_given_its_address(tmp_path):
    """A Ray head started with `ray start` stands for a cluster: the study
    connects to it by --address instead of starting its own Ray. The head
    runs with --block in its own process group and only that group is
    stopped: `ray stop` would stop every Ray on the machine, a user's
    running study too."""
    ray_cli = shutil.which("ray", path=str(Path(sys.executable).parent))
    assert ray_cli, "the ray command is installed with the study extra"
    port = _free_port()
    # token authentication on the head and the driver alike, as Ray's docs ask of a cluster's every node
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
                             "--include-dashboard=false", "--disable-usage-stats"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    try:
        _wait_for_port(port, head)
        res = subprocess.run([sys.executable, "-m", "fixar.rl.study", "--envs", "Pendulum-v1", "--precisions",
                              "fxp32", "--steps", "200", "--address", f"127.0.0.1:{port}", "--out", str(tmp_path),
                              *TINY], capture_output=True, text=True, timeout=STUDY_HANG_S, env=env)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert f"on the Ray cluster at 127.0.0.1:{port}" in res.stdout
    assert (_run_dir(tmp_path, "Pendulum-v1", "fxp32") / "result.json").exists()


@pytest.mark.parametrize("args, message", [
    (["--envs", "Pendulum-v99"], "unknown or unavailable environment 'Pendulum-v99'"),
    (["--config", "no_such_config"], "no_such_config"),
    (["--precisions", "fp32,fp8"], "unknown precision(s) ['fp8']"),
    (["--multipliers", "exact,booth"], "--multipliers: unknown multiplier(s) ['booth']"),
    (["--hidden", "8"], "--hidden: two positive layer sizes expected"),
    (["--steps", "0"], "must be >= 1"),
    (["--address", "127.0.0.1:1", "--steps", "10"], "cannot reach the Ray cluster at 127.0.0.1:1"),
])
def test_bad_study_arguments_are_one_line(tmp_path, capsys, args, message):
    base = ["--envs", "Pendulum-v1", "--precisions", "fp32", "--out", str(tmp_path), *TINY]
    code = study(base + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "results.json").exists()


def test_a_ray_that_cannot_start_is_one_line(tmp_path, capsys, monkeypatch):
    """ray.init on an overloaded machine raises a bare Exception ("The current
    node timed out during startup ..."): said in one line, no traceback."""
    def timed_out(*args, **kwargs):
        raise Exception("The current node timed out during startup. This could happen because ...")

    monkeypatch.setattr(ray, "init", timed_out)
    base = ["--envs", "Pendulum-v1", "--precisions", "fp32", "--out", str(tmp_path), *TINY, "--steps", "10"]
    code = study(base)
    err = capsys.readouterr().err.strip().splitlines()
    assert code in (1, 2) and len(err) == 1, err
    assert err[0].startswith("error: cannot start Ray (local): The current node timed out during startup"), err
    assert not (tmp_path / "results.json").exists()
