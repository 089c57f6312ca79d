"""The DDPG training loop: environment, replay buffer, warm-up, batches to the
backend, evaluation, logs and checkpoints. It does not know which backend it
drives.

Determinism: episode k of the run resets the environment with seed
``seed * 1000003 + k``, evaluation episode j with ``seed * 1000003 + 10**9 + j``,
and all sampling uses generators seeded from ``seed``; so a run is a function
of (seed, backend, settings), and a checkpoint taken in the middle of an
episode resumes exactly by replaying that episode's recorded actions into the
re-seeded environment (gymnasium's classic-control and MuJoCo tasks are
deterministic given the seed).
"""
from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fixar.config import load
from fixar.config.timing import timing
from fixar.rl.backends import make_backend
from fixar.rl.checkpoint import load_checkpoint, save_checkpoint
from fixar.rl.envs import make_env, to_env_action
from fixar.rl.hyper import Hyper
from fixar.rl.replay import Replay

EPISODE_SEED_STRIDE = 1_000_003
EVAL_SEED_OFFSET = 10**9


@dataclass(frozen=True)
class RunSettings:
    env: str = "Pendulum-v1"
    backend: str = "golden"
    steps: int = 20_000
    seed: int = 0
    warmup: int = 1_000           # random actions before the first update
    eval_every: int = 5_000
    eval_episodes: int = 10
    checkpoint_every: int = 5_000
    replay_size: int = 1_000_000
    out: str = "runs/latest"
    precision: str = "auto"       # fp32 (float backend), fxp32, qat or fxp16 (golden); auto: the backend's own
    qat_delay: int | None = None  # qat: the step at which activations switch to 16 bits
    config: str = "default"       # the engine's config (golden, rtl, xrt): a shipped name or a TOML file
    xclbin: str | None = None     # xrt: the board image
    hyper: Hyper = field(default_factory=Hyper)

    def __post_init__(self) -> None:
        if self.precision == "qat":
            if self.qat_delay is None or not 0 <= self.qat_delay <= self.steps:
                raise ValueError(f"qat_delay: needs a step in [0, {self.steps}] for precision qat, "
                                 f"got {self.qat_delay}")
        elif self.qat_delay is not None:
            raise ValueError(f"qat_delay is only meaningful with precision qat (precision is {self.precision})")
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "replay_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"warmup: must be >= 0, got {self.warmup}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hyper"] = self.hyper.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunSettings:
        d = dict(d)
        d["hyper"] = Hyper.from_dict(d["hyper"])
        return cls(**d)


def tensorboard_writer(folder: Path):
    """A TensorBoard event writer in ``folder`` when tensorboardX (or PyTorch's)
    is installed (``pip install 'fixar[tensorboard]'``), else None: the CSV log
    is always written."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
    return SummaryWriter(str(folder))


def episode_seed(seed: int, k: int) -> int:
    return seed * EPISODE_SEED_STRIDE + k


def evaluate(backend, env_name: str, seed: int, episodes: int) -> float:
    """Mean return of ``episodes`` noise-free episodes on a separate environment."""
    env = make_env(env_name)
    total = 0.0
    for j in range(episodes):
        s, _ = env.reset(seed=episode_seed(seed, 0) + EVAL_SEED_OFFSET + j)
        done = False
        while not done:
            s, r, term, trunc, _ = env.step(to_env_action(env, backend.act(s, explore=False)))
            total += float(r)
            done = term or trunc
    env.close()
    return total / episodes


class Trainer:
    def __init__(self, run: RunSettings, resume: bool = False, log=print):
        self.run, self.log = run, log
        self.out = Path(run.out)
        self.ckpt_path = self.out / "checkpoint.npz"
        self.env = make_env(run.env)
        obs_dim = self.env.observation_space.shape[0]
        act_dim = self.env.action_space.shape[0]
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.backend = make_backend(run.backend, obs_dim, act_dim, run.hyper, run.seed, run.config, log=log,
                                    xclbin=run.xclbin)
        self.precision = run.precision if run.precision != "auto" else "fp32" if run.backend == "float" else "fxp32"
        self.backend.set_precision_phase(self.precision)
        self.replay = Replay(run.replay_size, obs_dim, act_dim)
        self.rng = np.random.default_rng(run.seed + 2)      # warm-up actions and batch sampling
        self.step = 0
        self.episode = 0
        self.ep_actions: list[np.ndarray] = []              # this episode's normalized actions
        self.ep_return = 0.0
        self.evals: list[tuple[int, float]] = []
        self.timers = {"env": 0.0, "host": 0.0, "accel": 0.0}
        if resume:
            self._resume()
        self.state = self._start_episode(replay_actions=self.ep_actions)

    # ------------------------------------------------------------- episodes
    def _start_episode(self, replay_actions=()):
        s, _ = self.env.reset(seed=episode_seed(self.run.seed, self.episode))
        for a in replay_actions:  # resume in the middle of an episode: same states again
            s, *_ = self.env.step(to_env_action(self.env, a))
        return s

    def _resume(self) -> None:
        meta, arrays = load_checkpoint(self.ckpt_path, self.run)
        self.backend.load_state_dict({k[8:]: v for k, v in arrays.items() if k.startswith("backend.")})
        self.replay.load_state_dict({k[7:]: v for k, v in arrays.items() if k.startswith("replay.")})
        self.rng.bit_generator.state = meta["rng"]
        self.step, self.episode, self.ep_return = meta["step"], meta["episode"], meta["ep_return"]
        self.evals = [tuple(e) for e in meta["evals"]]
        self.ep_actions = list(arrays["episode_actions"])
        self.log(f"resumed {self.ckpt_path} at step {self.step} (episode {self.episode})")

    def save(self) -> Path:
        arrays = {f"backend.{k}": v for k, v in self.backend.state_dict().items()}
        arrays.update({f"replay.{k}": v for k, v in self.replay.state_dict().items()})
        act_dim = self.env.action_space.shape[0]
        arrays["episode_actions"] = np.array(self.ep_actions, np.float32).reshape(-1, act_dim)
        meta = {"step": self.step, "episode": self.episode, "ep_return": self.ep_return, "evals": self.evals,
                "rng": self.rng.bit_generator.state}
        save_checkpoint(self.ckpt_path, self.run, meta, arrays)
        return self.ckpt_path

    # ------------------------------------------------------------- the loop
    def train(self, progress: bool = True) -> dict:
        run = self.run
        self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / "log.csv"
        new_log = not log_path.exists() or self.step == 0
        if not new_log:
            _drop_rows_after(log_path, self.step)   # written after the checkpoint by a run that then died
        logf = open(log_path, "w" if new_log else "a", newline="")
        writer = csv.writer(logf)
        if new_log:
            writer.writerow(["step", "episode", "episode_return", "eval_return", "critic_loss", "q_mean"])
        stats = {"critic_loss": float("nan"), "q_mean": float("nan")}
        tb = tensorboard_writer(self.out / "tensorboard")
        t0, step0 = time.perf_counter(), self.step
        last_report = t0
        try:
            while self.step < run.steps:
                if run.precision == "qat" and self.step == run.qat_delay:
                    self.backend.switch_to_fxp16()
                    self.log(f"step {self.step}: QAT switch, activations are 16-bit from here")
                t = time.perf_counter()
                if self.step < run.warmup:
                    a = self.rng.uniform(-1, 1, self.env.action_space.shape).astype(np.float32)
                else:
                    a = self.backend.act(self.state, explore=True)
                t1 = time.perf_counter()
                s2, r, term, trunc, _ = self.env.step(to_env_action(self.env, a))
                t2 = time.perf_counter()
                self.replay.add(self.state, a, r, s2, term)
                self.ep_actions.append(np.asarray(a, np.float32))
                self.ep_return += float(r)
                self.state = s2
                self.step += 1
                t3 = time.perf_counter()
                if self.step >= run.warmup and self.replay.n >= run.hyper.batch:
                    stats = self.backend.train(*self.replay.sample(self.rng, run.hyper.batch))
                t4 = time.perf_counter()
                self.timers["accel"] += (t1 - t) + (t4 - t3)
                self.timers["env"] += t2 - t1
                self.timers["host"] += t3 - t2
                eval_ret = ""
                if self.step % run.eval_every == 0 or self.step == run.steps:
                    eval_ret = evaluate(self.backend, run.env, run.seed, run.eval_episodes)
                    self.evals.append((self.step, eval_ret))
                if tb is not None:
                    if eval_ret != "":
                        tb.add_scalar("eval_return", eval_ret, self.step)
                    if term or trunc:
                        tb.add_scalar("episode_return", self.ep_return, self.step)
                        for key in ("critic_loss", "q_mean"):
                            if np.isfinite(stats[key]):     # (nan before the first update)
                                tb.add_scalar(key, stats[key], self.step)
                if term or trunc:
                    writer.writerow([self.step, self.episode, round(self.ep_return, 3), eval_ret,
                                     stats["critic_loss"], stats["q_mean"]])
                    logf.flush()
                    self.episode += 1
                    self.ep_actions, self.ep_return = [], 0.0
                    self.state = self._start_episode()
                elif eval_ret != "":
                    writer.writerow([self.step, self.episode, "", eval_ret, stats["critic_loss"], stats["q_mean"]])
                if self.step % run.checkpoint_every == 0:
                    self.save()
                now = time.perf_counter()
                if progress and (self.step % 1000 == 0 or self.step == run.steps or now - last_report > 20):
                    last_report = now
                    rate = (self.step - step0) / max(time.perf_counter() - t0, 1e-9)
                    last = f"{self.evals[-1][1]:.1f} @ {self.evals[-1][0]}" if self.evals else "-"
                    self.log(f"step {self.step}/{run.steps}  {rate:.3g} steps/s  episode {self.episode}  "
                             f"eval return {last}")
        except KeyboardInterrupt:
            path = self.save()
            logf.close()
            if tb is not None:
                tb.close()
            self.log(f"interrupted at step {self.step}: checkpoint saved to {path}; continue with --resume")
            raise
        logf.close()
        if tb is not None:
            tb.close()
        self.save()
        result = self.summary()
        (self.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_curve(log_path, self.out / "learning_curve.png", f"{run.env}, {run.backend} backend, seed {run.seed}")
        return result

    def close(self) -> None:
        """Release the backend (the rtl backend's simulator process)."""
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()

    def summary(self) -> dict:
        busy = sum(self.timers.values())
        out = {"env": self.run.env, "backend": self.run.backend, "seed": self.run.seed, "steps": self.step,
               "episodes": self.episode, "evals": self.evals,
               "final_eval_return": self.evals[-1][1] if self.evals else None,
               "time_s": {k: round(v, 3) for k, v in self.timers.items()},
               "ips": round(self.run.hyper.batch * self.step / busy, 1) if busy else None}
        if self.run.backend == "golden":
            out["projected_accelerator"] = self._projected()
        cycles = getattr(self.backend, "cycles", None)
        if cycles is not None and self.step:
            # the rtl backend counts the simulated engine's cycles: measured in simulation, not on a board
            clock_hz = timing(load(self.run.config)).clock_hz
            out["simulated_accelerator"] = {
                "label": f"cycles of the simulated RTL engine ({self.run.config} config); time at "
                         f"{clock_hz / 1e6:g} MHz (the config's target clock)",
                **cycles, "train_steps": self.backend.train_steps, "clock_hz": clock_hz,
                "time_s_at_clock": round((cycles["train"] + cycles["act"]) / clock_hz, 6)}
        return out

    def _projected(self) -> dict:
        """The accelerator time of the same step on the default 2 x 16 x 16 engine
        at its target clock, from the program's cycle model (the RTL bench matches it
        cycle for cycle): projected, not measured."""
        from fixar.compiler.program import ProgramError, projected

        hp = self.run.hyper
        try:
            return {"label": "projected from the RTL cycle model, default config, target clock",
                    **projected(load("default"), self.obs_dim, self.act_dim, hp.hidden, hp.batch)}
        except ProgramError as exc:
            return {"label": "not projected", "reason": str(exc)}


def _drop_rows_after(log_csv: Path, step: int) -> None:
    """Keep the header and the rows up to ``step`` (the checkpoint's): a run
    killed after its last checkpoint logged steps it will now redo."""
    with open(log_csv, newline="") as f:
        rows = list(csv.reader(f))
    keep = rows[:1] + [r for r in rows[1:] if r and r[0].isdigit() and int(r[0]) <= step]
    if len(keep) != len(rows):
        tmp = log_csv.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(keep)
        tmp.replace(log_csv)


def plot_curve(log_csv: Path, png: Path, title: str) -> None:
    """Episode returns and evaluation returns against environment steps."""
    import matplotlib
    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    ep, ev = [], []
    with open(log_csv) as f:
        for row in csv.DictReader(f):
            if row["episode_return"]:
                ep.append((int(row["step"]), float(row["episode_return"])))
            if row["eval_return"]:
                ev.append((int(row["step"]), float(row["eval_return"])))
    fig, ax = plt.subplots(figsize=(7, 4))
    if ep:
        ax.plot(*zip(*ep), ".", alpha=0.4, label="training episode return")
    if ev:
        ax.plot(*zip(*ev), "o-", label="evaluation (mean of episodes, no noise)")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
