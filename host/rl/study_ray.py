"""The reward study's runs as Ray tasks: a local Ray on this machine by
default, a cluster when given its address (``--address`` or RAY_ADDRESS).

Each (env, precision, seed) is one task running an ordinary training run in
its folder (``OUT/runs/<env>/<precision>/seed<k>``). A run whose
``result.json`` exists is not submitted again; a run with a checkpoint
resumes from it. Tasks report their progress lines to one small actor, the
board, which the driver prints from; Ctrl-C in the driver asks every task,
through the board, to stop at its next step boundary and save, and a second
Ctrl-C stops at once (runs keep their last periodic checkpoint).

On a cluster every node needs this project installed (the same version),
and resuming an interrupted run needs ``OUT`` on storage all nodes share;
finished results always come back to the driver, which writes them into
its own ``OUT`` (docs/study.md).
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

RAY_HINT = "the study runs on Ray: pip install -e '.[study]' (make study installs it)"
PRINT_EVERY_S = 15.0      # the driver's overall progress line
# sizes each library's thread pool when it is imported (the task's worker process starts with them)
THREAD_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FIXAR_THREADS")


class StudyError(RuntimeError):
    """Ray is missing or cannot start / connect: one line for the user."""


def _ray():
    try:
        import ray
    except ImportError:
        raise StudyError(RAY_HINT) from None
    return ray


def run_id(job: dict) -> str:
    return f"{job['env']}/{job.get('column', job['precision'])}/seed{job['seed']}"


def finished_result(job: dict) -> dict | None:
    """The run's result when its folder already holds one (not redone)."""
    path = Path(job["out"]) / "result.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class _Board:
    """The latest progress line of every run and the driver's stop request."""

    def __init__(self):
        self.lines: dict[str, str] = {}
        self.stop = False
        self.active: set[str] = set()      # runs that reported and have not been collected
        self.peak = 0                      # the most runs that were ever active at once

    def report(self, rid: str, text: str) -> bool:
        """Keeps the run's line; answers whether the study is stopping."""
        if rid not in self.lines:
            self.active.add(rid)
            self.peak = max(self.peak, len(self.active))
        self.lines[rid] = text
        return self.stop

    def finished(self, rid: str) -> None:
        self.active.discard(rid)

    def most_at_once(self) -> int:
        return self.peak

    def latest(self) -> dict:
        return dict(self.lines)

    def request_stop(self) -> None:
        self.stop = True


def _reporter(board, rid: str):
    """The run's log callback inside the task: forwards its progress lines
    to the board, whose answer is whether the driver wants the study
    stopped. A stop is delivered as SIGINT to this worker process, so the
    run takes its ordinary Ctrl-C path: it stops at the next step boundary
    and saves its checkpoint.

    The task never waits for the board: a task blocked in ray.get gives its
    CPU back to the scheduler, which then starts another run on it (seen:
    three runs on two CPUs). So the answer to one report is looked at, if it
    has arrived, at the next."""
    ray = _ray()
    answer = [None]

    def log(text: str) -> None:
        text = str(text)
        # progress lines come from inside the training loop, where SIGINT is the run's own stop request
        # (elsewhere, e.g. while a resumed run loads, it would be a plain KeyboardInterrupt)
        in_loop = text.startswith("step ")
        ref = answer[0]
        if in_loop and ref is not None and ray.wait([ref], timeout=0)[0] and ray.get(ref):
            os.kill(os.getpid(), signal.SIGINT)
        answer[0] = board.report.remote(rid, text)
    return log


def _task(job: dict, board) -> dict:
    """One run (in a Ray worker). Returns its result, or
    ``{"interrupted": message}`` when the driver stopped the study."""
    from fixar.rl.loop import Interrupted
    from fixar.rl.study import train_job

    rid = run_id(job)
    # The stop request travels as SIGINT, so the run must receive it: Ray blocks SIGINT in its workers
    # (a Ctrl-C meant for the driver must not kill them), and a study started in the background passes
    # it on ignored (the run would keep an ignored SIGINT ignored). Both are undone while it trains.
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return train_job(job, log=_reporter(board, rid))
    except Interrupted as exc:
        return {"interrupted": str(exc)}
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


CONNECT_TIMEOUT_S = 5.0


def _reachable(address: str) -> None:
    """Ray retries an unreachable head for minutes; a host:port that does
    not answer is reported at once instead ("auto" and the like are left to
    Ray, which fails fast for them)."""
    import socket

    hostport = address.split("://", 1)[-1]
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise StudyError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def start_ray(address: str | None, jobs: int) -> str:
    """Ray for a set of runs: the cluster at ``address`` (or RAY_ADDRESS), else
    a new local one with ``jobs`` CPUs; a one-line StudyError when it cannot
    be reached or started. Returns where the runs go, for the progress line."""
    ray = _ray()
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _reachable(address)
    try:
        if address:
            ray.init(address=address, logging_level="WARNING", log_to_driver=False)
            where = f"the Ray cluster at {address}"
        else:
            # "local": a new Ray of our own, even when a `ray start` cluster runs on this machine (without an
            # address ray.init joins that one)
            ray.init(address="local", num_cpus=jobs, include_dashboard=False, logging_level="WARNING",
                     log_to_driver=False)
            where = f"a local Ray with {jobs} CPU(s)"
    except Exception as exc:    # noqa: BLE001 - Ray raises bare Exception too (a node that timed out starting)
        ray.shutdown()          # what it started of itself, if anything
        raise StudyError(f"cannot start Ray ({address or 'local'}): {(str(exc) or type(exc).__name__).splitlines()[0]}"
                         + ("" if address else " (a machine this loaded can time Ray's start out: run again, "
                                               "or lower the load)")) from None
    return where


def _print_progress(board, done: int, total: int, t0: float, pending: list[str], waiting: int = 0) -> None:
    """One overall line, then each started run's latest progress line (a
    run that has reported nothing yet is still queued, as are the ``waiting``
    runs not yet handed to Ray)."""
    ray = _ray()
    lines = ray.get(board.latest.remote())
    running = [rid for rid in pending if rid in lines]
    elapsed = int(time.monotonic() - t0)
    print(f"study: {done}/{total} runs done, {len(running)} running, {len(pending) - len(running) + waiting} queued, "
          f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d} elapsed", flush=True)
    for rid in running:
        print(f"  {rid}: {lines[rid]}", flush=True)


def run_all(jobs: list[dict], address: str | None = None, cpus_per_run: int = 1, local_cpus: int = 2) -> list:
    """Every job's result, in order (done ones read from their folders).
    Raises KeyboardInterrupt after the running tasks saved when the user
    pressed Ctrl-C; a failed run raises StudyError naming it, after the
    others finished."""
    ray = _ray()
    results: list = [finished_result(j) for j in jobs]
    todo = [i for i, r in enumerate(results) if r is None]
    total = len(jobs)
    print(f"study: {total} runs, {total - len(todo)} already done", flush=True)
    if not todo:
        return results
    where = start_ray(address, local_cpus)
    # SIGTERM (a batch system, `kill`) stops the study as Ctrl-C does, every run saving first; set after
    # ray.init, which installs a SIGTERM handler of its own in the driver
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"study: {len(todo)} run(s) on {where}, {cpus_per_run} CPU(s) each; runs in "
          f"{Path(jobs[0]['out']).parents[2]}", flush=True)
    try:
        return _drive(ray, jobs, results, todo, cpus_per_run)
    finally:
        ray.shutdown()


def _drive(ray, jobs, results, todo, cpus_per_run):
    threads = {k: str(cpus_per_run) for k in THREAD_ENV}
    board = ray.remote(num_cpus=0)(_Board).remote()
    task = ray.remote(num_cpus=cpus_per_run, max_retries=2)(_task)
    # Runs are handed to Ray no faster than its CPUs take them: Ray lends a task's CPU to the
    # next queued task whenever the task waits on Ray, even for a moment (seen: three runs on two
    # CPUs, each a third slower), so queueing them all at once oversubscribes the machine.
    slots = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus_per_run)
    queue = list(todo)
    submit = lambda i: task.options(runtime_env={"env_vars": threads}).remote(jobs[i], board)  # noqa: E731
    pending = {submit(i): i for i in queue[:slots]}
    del queue[:slots]
    t0 = last = time.monotonic()
    failures, interrupted = [], []
    stopping = False
    while pending:
        try:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                i = pending.pop(ref)
                board.finished.remote(run_id(jobs[i]))
                _collect(ray, ref, i, jobs, results, failures, interrupted)
                if queue and not stopping:
                    j = queue.pop(0)
                    pending[submit(j)] = j
            if time.monotonic() - last >= PRINT_EVERY_S:
                last = time.monotonic()
                running = [run_id(jobs[i]) for i in pending.values()]
                _print_progress(board, sum(r is not None for r in results), len(jobs), t0, running, len(queue))
        except KeyboardInterrupt:
            if stopping:       # the second Ctrl-C: do not wait for the saves
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise
            stopping = True
            print("\nstopping: every running run saves its checkpoint at its next step boundary "
                  "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)
            board.request_stop.remote()
            for i in queue:
                print(f"  {run_id(jobs[i])}: not started (the study is stopping)", flush=True)
            queue.clear()
            _cancel_queued(ray, board, pending, jobs)
    print(f"study: at most {ray.get(board.most_at_once.remote())} run(s) at once ({slots} slot(s) of "
          f"{cpus_per_run} CPU(s))", flush=True)
    if failures:
        raise StudyError(f"{len(failures)} run(s) failed: " + "; ".join(failures))
    if stopping or interrupted:
        raise KeyboardInterrupt(f"{len(interrupted)} run(s) saved their checkpoints")
    return results


def _cancel_queued(ray, board, pending: dict, jobs) -> None:
    """Takes the runs that have not reported yet off the queue, so that a
    stopping study starts no new run (seen: each queued run started, trained
    to its first report and saved, one pair after another). A run that has
    just started gets the cancel as KeyboardInterrupt: in its loop that is
    the ordinary stop (it saves), before it a run with nothing to save."""
    started = ray.get(board.latest.remote())
    for ref, i in pending.items():
        if run_id(jobs[i]) not in started:
            ray.cancel(ref)


def _collect(ray, ref, i, jobs, results, failures, interrupted) -> None:
    rid = run_id(jobs[i])
    try:
        res = ray.get(ref)
    except ray.exceptions.TaskCancelledError:
        print(f"  {rid}: stopped before its first report (the study is stopping)", flush=True)
        return
    except ray.exceptions.RayError as exc:
        cause = getattr(exc, "cause", None) or exc
        failures.append(f"{rid}: {str(cause).splitlines()[-1] if str(cause) else type(cause).__name__}")
        print(f"  {rid}: failed: {failures[-1]}", file=sys.stderr, flush=True)
        return
    if "interrupted" in res:
        interrupted.append(rid)
        print(f"  {rid}: {res['interrupted'].split('; continue')[0]}", flush=True)
        return
    results[i] = res
    out = Path(jobs[i]["out"])      # from a node without shared storage, the result comes back here
    if finished_result(jobs[i]) is None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "result.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"  {rid}: final {res['final_eval_return']:.1f}", flush=True)
