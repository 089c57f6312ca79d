"""The host RL loop with the float backend: gradients, determinism, exact
resume, and clear errors for bad environments, backends and checkpoints."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from fixar.rl.backends import BackendUnavailable, make_backend
from fixar.rl.backends.float32 import MLP
from fixar.rl.checkpoint import CheckpointError
from fixar.rl.envs import EnvError, make_env
from fixar.rl.hyper import Hyper
from fixar.rl.loop import RunSettings, Trainer

SMALL = Hyper(hidden=(16, 8), batch=8, actor_lr=1e-3, critic_lr=1e-3)


def settings(tmp_path, **kw):
    base = dict(steps=300, warmup=100, eval_every=300, eval_episodes=1, checkpoint_every=150,
                out=str(tmp_path), hyper=SMALL, seed=3)
    return RunSettings(**{**base, **kw})


def test_mlp_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    for out_act in ("tanh", "identity"):
        net = MLP([3, 5, 4, 2], out_act, rng)
        net.W = [w.astype(np.float64) * 50 for w in net.W]  # away from ReLU kinks and tiny last layer
        net.b = [b.astype(np.float64) for b in net.b]
        x = rng.normal(size=(3, 4))
        dy = rng.normal(size=(2, 4))
        y, acts = net.forward(x, keep=True)
        grads, dx = net.backward(acts, dy)
        eps = 1e-6
        for p, g in zip(net.params(), grads):
            idx = tuple(rng.integers(0, s) for s in p.shape)
            old = p[idx]
            p[idx] = old + eps
            up = np.sum(dy * net.forward(x))
            p[idx] = old - eps
            down = np.sum(dy * net.forward(x))
            p[idx] = old
            assert abs((up - down) / (2 * eps) - g[idx]) < 1e-5 * max(1, abs(g[idx]))
        xp = x.copy()
        xp[1, 2] += eps
        xm = x.copy()
        xm[1, 2] -= eps
        assert abs((np.sum(dy * net.forward(xp)) - np.sum(dy * net.forward(xm))) / (2 * eps) - dx[1, 2]) < 1e-5


@pytest.mark.parametrize("backend", ["float", "golden"])
def test_same_seed_same_run(tmp_path, backend):
    a = Trainer(settings(tmp_path / "a", backend=backend), log=lambda *_: None)
    a.train(progress=False)
    b = Trainer(settings(tmp_path / "b", backend=backend), log=lambda *_: None)
    b.train(progress=False)
    for k, v in a.backend.state_dict().items():
        assert np.array_equal(v, b.backend.state_dict()[k]), k


@pytest.mark.parametrize("backend", ["float", "golden"])
def test_resume_in_the_middle_of_an_episode_is_exact(tmp_path, backend):
    """Stop at step 250 (mid-episode: Pendulum episodes are 200 steps), resume to 300."""
    straight = Trainer(settings(tmp_path / "s", backend=backend), log=lambda *_: None)
    straight.train(progress=False)
    first = Trainer(settings(tmp_path / "r", steps=250, backend=backend), log=lambda *_: None)
    first.train(progress=False)
    resumed = Trainer(settings(tmp_path / "r", backend=backend), resume=True, log=lambda *_: None)
    resumed.train(progress=False)
    for k, v in straight.backend.state_dict().items():
        assert np.array_equal(v, resumed.backend.state_dict()[k]), k
    assert straight.evals[-1] == resumed.evals[-1]  # the shorter first run also evaluated at its end


def test_resume_from_an_older_checkpoint_drops_the_log_rows_after_it(tmp_path):
    """A run killed some steps after its last checkpoint (here: its 150-step
    checkpoint put back after it went on to 300) resumes from the checkpoint;
    the log then holds each step once, as a straight run's does."""
    import shutil
    straight = tmp_path / "s"
    Trainer(settings(straight, eval_every=50), log=lambda *_: None).train(progress=False)
    run = tmp_path / "r"
    Trainer(settings(run, steps=150, eval_every=50), log=lambda *_: None).train(progress=False)
    shutil.copy(run / "checkpoint.npz", tmp_path / "at150.npz")
    Trainer(settings(run, eval_every=50), resume=True, log=lambda *_: None).train(progress=False)
    shutil.copy(tmp_path / "at150.npz", run / "checkpoint.npz")
    Trainer(settings(run, eval_every=50), resume=True, log=lambda *_: None).train(progress=False)
    assert (run / "log.csv").read_text() == (straight / "log.csv").read_text()


def test_mismatched_and_corrupt_checkpoints_are_rejected(tmp_path):
    Trainer(settings(tmp_path, steps=150), log=lambda *_: None).train(progress=False)
    with pytest.raises(CheckpointError, match="different run.*seed"):
        Trainer(settings(tmp_path, seed=4), resume=True)
    ckpt = tmp_path / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        Trainer(settings(tmp_path), resume=True)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        Trainer(settings(tmp_path / "empty"), resume=True)


def test_bad_environments_are_clear_errors():
    with pytest.raises(EnvError, match="unknown or unavailable environment 'Pendulum-v99'"):
        make_env("Pendulum-v99")
    with pytest.raises(EnvError, match="Discrete actions; DDPG needs continuous"):
        make_env("CartPole-v1")


def test_unavailable_or_unknown_backends_say_so(tmp_path):
    with pytest.raises(BackendUnavailable, match="needs --xclbin"):
        make_backend("xrt", 3, 1, SMALL, 0)
    with pytest.raises(BackendUnavailable, match="no xclbin at"):
        make_backend("xrt", 3, 1, SMALL, 0, xclbin=str(tmp_path / "none.xclbin"))
    image = tmp_path / "fixar.xclbin"
    image.write_bytes(b"xclbin2\0")
    try:
        import pyxrt  # noqa: F401
    except ImportError:       # this machine: no XRT
        with pytest.raises(BackendUnavailable, match="pyxrt .* is not importable"):
            make_backend("xrt", 3, 1, SMALL, 0, xclbin=str(image))
    with pytest.raises(BackendUnavailable, match="unknown backend 'gpu'"):
        make_backend("gpu", 3, 1, SMALL, 0)
    with pytest.raises(ValueError, match="neither a shipped config"):
        make_backend("golden", 3, 1, SMALL, 0, config="huge")


def test_rtl_backend_checks_before_it_builds_anything():
    """Networks that do not fit the engine fail at once, with the compiler's
    reason; a refused precision starts no simulator."""
    from fixar.compiler.program import ProgramError
    big = Hyper(hidden=(4000, 3000), batch=512)
    with pytest.raises(ProgramError, match="needs .* rows"):
        make_backend("rtl", 3, 1, big, 0, config="small")
    backend = make_backend("rtl", 3, 1, SMALL, 0, config="small")
    with pytest.raises(ValueError, match="rtl backend runs fxp32, qat and bfp"):
        backend.set_precision_phase("fxp16")
    assert backend._proc is None


def test_cli_reports_errors_with_exit_code_2(tmp_path):
    res = subprocess.run([sys.executable, "-m", "fixar.cli", "train", "--backend", "xrt", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "needs --xclbin" in res.stderr
    res = subprocess.run([sys.executable, "-m", "fixar.cli", "train", "--backend", "rtl", "--precision", "fxp16",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "rtl backend runs fxp32, qat and bfp" in res.stderr
    res = subprocess.run([sys.executable, "-m", "fixar.cli", "train", "--config", "nosuch", "--out", str(tmp_path)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "neither a shipped config" in res.stderr
    res = subprocess.run([sys.executable, "-m", "fixar.cli", "train", "--backend", "float", "--precision", "fxp16",
                          "--out", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "needs a fixed-point backend" in res.stderr
    res = subprocess.run([sys.executable, "-m", "fixar.cli", "eval", str(tmp_path / "nothing")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "no such checkpoint" in res.stderr


def test_ctrl_c_saves_a_checkpoint_that_resumes(tmp_path):
    """SIGINT in the middle of `fixar train`: exit 130, a checkpoint, and
    `--resume` finishes the run with its curve and summary."""
    import json
    import signal

    args = [sys.executable, "-u", "-m", "fixar.cli", "train", "--hidden", "16,8", "--batch", "8", "--warmup", "100",
            "--eval-every", "100000", "--eval-episodes", "1", "--out", str(tmp_path)]
    # SIGINT back to its default in the child: a shell that starts this run in
    # the background (no job control) hands it down ignored, and Python then
    # never raises KeyboardInterrupt
    proc = subprocess.Popen(args + ["--steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:
        if line.startswith("step 1000/"):
            proc.send_signal(signal.SIGINT)
            break
    try:
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError("fixar train did not stop on SIGINT") from None
    out = proc.stdout.read()
    assert rc == 130, out
    assert "checkpoint saved" in out and (tmp_path / "checkpoint.npz").exists()
    res = subprocess.run(args + ["--steps", "1500", "--resume"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "resumed" in res.stdout
    assert json.loads((tmp_path / "result.json").read_text())["steps"] == 1500
    assert (tmp_path / "learning_curve.png").stat().st_size > 1000


def test_qat_run_switches_and_resumes_exactly_across_the_switch(tmp_path):
    """precision qat with the switch at step 200: a run stopped at 250 and
    resumed to 300 ends with the same weights as a straight run."""
    kw = dict(backend="golden", precision="qat", qat_delay=200)
    straight = Trainer(settings(tmp_path / "s", **kw), log=lambda *_: None)
    straight.train(progress=False)
    assert straight.backend.ddpg.phase == "fxp16"
    first = Trainer(settings(tmp_path / "r", steps=250, **kw), log=lambda *_: None)
    first.train(progress=False)
    resumed = Trainer(settings(tmp_path / "r", **kw), resume=True, log=lambda *_: None)
    resumed.train(progress=False)
    for k, v in straight.backend.state_dict().items():
        assert np.array_equal(v, resumed.backend.state_dict()[k]), k


def test_fxp16_from_scratch_feeds_every_layer_16_bit_inputs(tmp_path):
    """precision fxp16: layer inputs saturate to pe.act16 (Q0.15) from the first
    step, the array runs FXP16, and a short run trains, saves and resumes."""
    from fixar.rl.backends.golden import GoldenBackend

    b = GoldenBackend(3, 1, SMALL, seed=0)
    b.set_precision_phase("fxp16")
    cfg = b.cfg
    big = np.full((3, 2), 5 << cfg.pe.act32.frac, dtype=np.int64)   # 5.0: beyond Q0.15
    acts = b.ddpg.actor.forward(cfg, big, b.ddpg._q("actor"))
    limit = 1 << cfg.pe.act32.frac
    assert all(np.all(np.abs(a) <= limit) for a in acts[:-1]), "a layer input escaped the 16-bit format"
    assert np.all(acts[0] == ((1 << cfg.pe.act16.frac) - 1) << (cfg.pe.act32.frac - cfg.pe.act16.frac))
    res = subprocess.run([sys.executable, "-m", "fixar.cli", "train", "--backend", "golden", "--precision", "fxp16",
                          "--steps", "300", "--warmup", "100", "--hidden", "16,16", "--eval-every", "300",
                          "--eval-episodes", "1", "--out", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "checkpoint.npz").exists()
    # a golden run also reports the accelerator time of its step, projected from the RTL cycle model
    import json

    proj = json.loads((tmp_path / "result.json").read_text())["projected_accelerator"]
    assert "projected" in proj["label"] and proj["train_step_cycles"] > 0 and proj["accel_ips"] > 0


def test_tensorboard_events_are_written(tmp_path):
    pytest.importorskip("tensorboardX")   # installed by `make setup` (the tensorboard extra)
    t = Trainer(settings(tmp_path, backend="golden"), log=lambda *_: None)
    t.train(progress=False)
    (events,) = (tmp_path / "tensorboard").glob("events.out.tfevents.*")
    data = events.read_bytes()
    for tag in (b"eval_return", b"episode_return", b"critic_loss"):
        assert tag in data, f"no {tag.decode()} in the TensorBoard events"
