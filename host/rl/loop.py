"""The DDPG training loop: environment, replay buffer, warm-up, batches to the
backend, evaluation, logs and checkpoints. It does not know which backend it
drives.

Determinism: episode k of the run resets the environment with seed
``seed * 1000003 + k``, evaluation episode j with ``seed * 1000003 + 10**9 + j``,
and all sampling uses generators seeded from ``seed``; so a run is a function
of (seed, backend, settings), and a checkpoint taken in the middle of an
episode resumes exactly by replaying that episode's recorded actions into the
re-seeded environment (gymnasium's classic-control and MuJoCo tasks are
deterministic given the seed). SIGINT and SIGTERM stop a run only between
steps, so its checkpoint is that of a run whose --steps ended there.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fixar.config import load
from fixar.config.timing import timing
from fixar.rl.backends import make_backend
from fixar.rl.checkpoint import CheckpointError, load_checkpoint, read_header, save_checkpoint
from fixar.rl.envs import make_env, to_env_action
from fixar.rl.hyper import Hyper
from fixar.rl.inputs import engine_config
from fixar.rl.precision_plot import write_precision
from fixar.rl.progress import Progress
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
    precision: str = "auto"       # fp32 (float backend), fxp32, qat, fxp16 or bfp (golden); auto: the backend's own
    qat_delay: int | None = None  # qat: the step at which activations switch to 16 bits
    config: str = "default"       # the engine's config (golden, rtl, xrt): a shipped name or a TOML file
    xclbin: str | None = None     # xrt: the board image
    multiplier: str | None = None  # the PE's multiplier in place of the config's (golden, rtl): docs/multipliers.md
    hyper: Hyper = field(default_factory=Hyper)

    def __post_init__(self) -> None:
        # messages name the command line's options: that is where users meet them
        if self.precision == "qat":
            if self.qat_delay is None or not 1 <= self.qat_delay <= self.steps:
                raise ValueError(f"--qat-delay: the QAT switch needs a step in [1, {self.steps}] (--steps), "
                                 f"got {self.qat_delay}")
        elif self.qat_delay is not None:
            raise ValueError(f"--qat-delay: only with --precision qat (precision is {self.precision})")
        for name in ("steps", "eval_every", "eval_episodes", "checkpoint_every", "replay_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{_flag(name)}: must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0:
            raise ValueError(f"--warmup: must be >= 0, got {self.warmup}")
        if self.seed < 0:
            raise ValueError(f"--seed: must be >= 0 (environments take non-negative seeds), got {self.seed}")

    @property
    def first_update(self) -> int:
        """The step whose end brings the first update: the warm-up's last, or
        the first at which the replay holds a whole batch."""
        return max(self.warmup, self.hyper.batch, 1)

    def check_trainable(self) -> None:
        """Refuse a run that would never update its networks, or whose QAT
        switch comes before any update (it would fix the 16-bit ranges from an
        untrained network, which then never learns)."""
        b, steps = self.hyper.batch, self.steps
        if b > self.replay_size:
            raise ValueError(f"--batch {b} is larger than the replay buffer ({self.replay_size} transitions): "
                             "no batch could ever be drawn")
        if self.warmup > steps:
            raise ValueError(f"--warmup {self.warmup} --steps {steps}: the warm-up (random actions, no updates) is "
                             "longer than the run, which would never train; lower --warmup or raise --steps")
        if b > steps:
            raise ValueError(f"--batch {b} --steps {steps}: the first update needs {b} transitions in the replay "
                             "and the run makes fewer, so it would never train; lower --batch or raise --steps")
        if self.precision == "qat" and self.qat_delay <= self.first_update:
            raise ValueError(f"--qat-delay: the QAT switch is at step {self.qat_delay}, at or before the end of the "
                             f"warm-up at step {self.first_update} (--warmup, or --batch when larger), so its ranges "
                             f"would come from an untrained network; switch after step {self.first_update} "
                             "(--qat-delay, by default half of --steps) or raise --steps")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hyper"] = self.hyper.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunSettings:
        d = dict(d)
        d["hyper"] = Hyper.from_dict(d["hyper"])
        return cls(**d)


def _flag(name: str) -> str:
    """The command-line option of a RunSettings field."""
    return "replay_size" if name == "replay_size" else "--" + name.replace("_", "-")


class Interrupted(KeyboardInterrupt):
    """The run stopped on SIGINT or SIGTERM; the message says what was saved."""

    def __init__(self, signum: int, message: str):
        super().__init__(signum, message)       # both in args: a process pool pickles it back to the study
        self.signum, self.message = signum, message

    def __str__(self) -> str:
        return self.message


class _Abandoned(KeyboardInterrupt):
    """A second signal: stop wherever the run is."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _StopSignals:
    """SIGINT and SIGTERM while a run trains. The first is only noted: the
    loop stops at the next step boundary, where its state is that of a run
    that ended there, and saves. The second raises _Abandoned wherever the run
    is (a save in progress removes its temporary file); later ones are
    ignored, so that clean-up runs to its end. Python runs signal handlers
    in the main thread only, so elsewhere (a thread of some caller) nothing is
    installed."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.received: int | None = None
        self.abandoned = False
        self._old: dict = {}

    def __enter__(self) -> _StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                # an ignored signal stays ignored: a shell starts background jobs with SIGINT ignored so
                # that Ctrl-C at the prompt leaves them running
                if signal.getsignal(sig) is not signal.SIG_IGN:
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            again = "Ctrl-C" if signum == signal.SIGINT else name
            # os.write, not print: the handler may run inside a print to the same stream
            lead = "\n" if sys.stderr.isatty() else ""
            os.write(2, f"{lead}{name}: stopping after this step to save a checkpoint ({again} again stops at "
                        "once, without saving)\n".encode())
        elif not self.abandoned:
            self.abandoned = True
            raise _Abandoned(signum)


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


LOG_HEADER = ["step", "episode", "episode_return", "eval_return", "critic_loss", "q_mean"]


class Trainer:
    """One run: ``resume`` continues it from ``checkpoint`` (by default the
    run folder's checkpoint.npz; `fixar eval` passes any saved one)."""

    def __init__(self, run: RunSettings, resume: bool = False, log=print, checkpoint: str | Path | None = None):
        self.run, self.log = run, log
        self.out = Path(run.out)
        self.ckpt_path = self.out / "checkpoint.npz"
        self.cfg = engine_config(run.config, run.multiplier)   # its name and digest go into every checkpoint
        self.env = make_env(run.env)
        obs_dim = self.env.observation_space.shape[0]
        act_dim = self.env.action_space.shape[0]
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self._say = log            # the run's messages; while the progress bar shows, through it
        self.backend = make_backend(run.backend, obs_dim, act_dim, run.hyper, run.seed, run.config,
                                    log=lambda text: self._say(text), xclbin=run.xclbin, multiplier=run.multiplier)
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
        self._saving = False
        if resume:
            self._resume(Path(checkpoint) if checkpoint is not None else self.ckpt_path)
        self.state = self._start_episode(replay_actions=self.ep_actions)

    # ------------------------------------------------------------- episodes
    def _start_episode(self, replay_actions=()):
        s, _ = self.env.reset(seed=episode_seed(self.run.seed, self.episode))
        for a in replay_actions:  # resume in the middle of an episode: same states again
            s, *_ = self.env.step(to_env_action(self.env, a))
        return s

    def _resume(self, path: Path) -> None:
        meta, arrays = load_checkpoint(path, self.run, self.cfg)
        self.backend.load_state_dict({k[8:]: v for k, v in arrays.items() if k.startswith("backend.")})
        self.replay.load_state_dict({k[7:]: v for k, v in arrays.items() if k.startswith("replay.")})
        self.rng.bit_generator.state = meta["rng"]
        self.step, self.episode, self.ep_return = meta["step"], meta["episode"], meta["ep_return"]
        self.evals = [tuple(e) for e in meta["evals"]]
        self.ep_actions = list(arrays["episode_actions"])
        self.log(f"resumed {path} at step {self.step} (episode {self.episode})")

    def save(self) -> Path:
        arrays = {f"backend.{k}": v for k, v in self.backend.state_dict().items()}
        arrays.update({f"replay.{k}": v for k, v in self.replay.state_dict().items()})
        act_dim = self.env.action_space.shape[0]
        arrays["episode_actions"] = np.array(self.ep_actions, np.float32).reshape(-1, act_dim)
        meta = {"step": self.step, "episode": self.episode, "ep_return": self.ep_return, "evals": self.evals,
                "rng": self.rng.bit_generator.state, "config": {"name": self.cfg.name, "digest": self.cfg.digest}}
        self._saving = True       # left set when the save fails: a second signal's message reads it
        save_checkpoint(self.ckpt_path, self.run, meta, arrays)
        self._saving = False
        return self.ckpt_path

    # ------------------------------------------------------------- the loop
    def train(self, progress: bool = True) -> dict:
        """Run to ``run.steps`` and write the results. SIGINT or SIGTERM stops
        the run at the next step boundary, saves and raises
        :class:`Interrupted`; a second one stops at once (abandoning a save in
        progress: the previous checkpoint stays as it was)."""
        self.run.check_trainable()
        with _StopSignals() as signals:
            try:
                return self._train(progress, signals)
            except _Abandoned as exc:
                raise Interrupted(exc.signum, self._abandoned(exc.signum)) from None

    def _abandoned(self, signum: int) -> str:
        """What a second signal left: read from the disk, so it is true
        however far the save got."""
        name = signal.Signals(signum).name
        what = ", abandoning the checkpoint being written" if self._saving else ", without saving"
        try:
            kept = f"{self.ckpt_path} holds step {read_header(self.ckpt_path)['step']}, intact"
        except CheckpointError:
            kept = "no checkpoint was written"
        return f"second {name}: stopped at once{what}; {kept}"

    def _train(self, progress: bool, signals: _StopSignals) -> dict:
        run = self.run
        self.out.mkdir(parents=True, exist_ok=True)
        log_path = self.out / "log.csv"
        logf = _open_log(log_path, self.step)
        writer = csv.writer(logf)
        bar = Progress(run.steps, self.step, self.log, Progress.mode_for(self.log, progress))
        self._say = bar.say
        tb = None
        stats = {"critic_loss": float("nan"), "q_mean": float("nan")}
        try:
            tb = tensorboard_writer(self.out / "tensorboard")
            while self.step < run.steps and signals.received is None:
                stats = self._one_step(stats, writer, logf, tb)
                bar.update(self.step, self.episode, self.evals)
        finally:
            bar.close()
            self._say = self.log
            logf.close()
            if tb is not None:
                tb.close()
        if signals.received is not None and self.step < run.steps:
            path = self.save()
            raise Interrupted(signals.received, f"interrupted by {signal.Signals(signals.received).name} at step "
                                                f"{self.step}: checkpoint saved to {path}; continue with --resume")
        self.save()
        result = self.summary()
        (self.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        plot_curve(log_path, self.out / "learning_curve.png", f"{run.env}, {run.backend} backend, seed {run.seed}")
        history = getattr(self.backend, "precision_history", lambda: None)()
        if history:
            write_precision(history, self.out, f"BFP mantissa widths, {run.env}, seed {run.seed}")
        return result

    def _note_precision(self) -> None:
        """Say when the backend's precision changes on its own (BFP's schedule
        widening a layer)."""
        note = getattr(self.backend, "precision_note", lambda: None)()
        if note is not None and note != getattr(self, "_last_note", None):
            self._say(f"step {self.step}: {note}")
        self._last_note = note

    def _one_step(self, stats: dict, writer, logf, tb) -> dict:
        """One environment step, the update, and the evaluation, log rows and
        checkpoint that fall on it. Returns the latest update's statistics."""
        run = self.run
        if run.precision == "qat" and self.step == run.qat_delay:
            self.backend.switch_to_fxp16()
            self._say(f"step {self.step}: QAT switch, activations are 16-bit from here")
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
            self._note_precision()
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
            logf.flush()      # the log's rows up to the checkpoint are on disk when it is
            self.save()
        return stats

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
            clock_hz = timing(self.cfg).clock_hz
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


def _open_log(log_csv: Path, step: int):
    """log.csv for appending the rows after ``step``, with its header first.
    A fresh run starts it; a resumed one keeps the header and the whole rows
    up to its checkpoint's step: a run killed after its last checkpoint logged
    steps it will now redo, and one killed before its first row (or with the
    header still in a buffer) left the file empty or headless."""
    rows = []
    if step > 0 and log_csv.exists():
        with open(log_csv, newline="") as f:
            rows = list(csv.reader(f))
    keep = [LOG_HEADER] + [r for r in rows[1:] if rows[0] == LOG_HEADER and len(r) == len(LOG_HEADER)
                           and r[0].isdigit() and int(r[0]) <= step]
    if keep != rows:
        tmp = log_csv.with_suffix(".tmp")
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(keep)
        tmp.replace(log_csv)
    return open(log_csv, "a", newline="")


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
