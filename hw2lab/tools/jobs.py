"""Running a reproduction's jobs: a few at a time, each in its own fixed folder, so that a rerun skips what
finished and continues what was interrupted; the epochs stream to the terminal as they end.

A `run.py` job is finished when its `metrics.json` says ok and its `.hydra/config.yaml` is the config the plan
composes (same overrides, same conf/); one with the same config and a `checkpoints/last.ckpt` continues from
it (`resume=<folder>`); any other folder is emptied and the job starts again. A bench job is finished when its
`result.json` holds the planned command. Ctrl-C or SIGTERM sends SIGTERM to every running job (each saves its
checkpoint and writes metrics.json as interrupted), starts nothing more, and returns.
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from hw2lab.run_files import read_run
from hw2lab.tools.declared import REPO_ROOT
from hw2lab.tools.plan import Job, composed, minutes_text
from hw2lab.tools.report.records import portable

# The epoch line every run logs (callbacks.learning_curves.EpochSummary): `epoch 3/15  train/loss 1.2  (0.9s)`.
EPOCH_LINE = re.compile(r"\bepoch (\d+)/(\d+)\s+(.*?)\s*\(([\d.]+)s\)\s*$")
# Config keys that say how a run was started, not what it computes.
START_KEYS = ("resume", "ckpt_path")
STOP_WAIT_S = 120


@dataclass
class JobState:
    job: Job
    dir: Path
    minutes: float  # the plan's estimate
    status: str = "pending"  # pending, finished (before this reproduction), running, ok, failed, interrupted
    resume: bool = False
    epoch: tuple[int, int] | None = None
    started: float = 0.0
    seconds: float = 0.0
    tail: deque = field(default_factory=lambda: deque(maxlen=8))
    process: subprocess.Popen | None = None


def job_dir(out: Path, job: Job) -> Path:
    """`<out>/<budget>/<task>/<run>/<job number>`: the same folder for the same job, every time."""
    return out / job.budget / job.spec.task / job.spec.name / str(job.index)


def config_overrides(job: Job, extra: list[str]) -> list[str]:
    """What composes the job's config: its overrides and the extra ones (not Hydra's own settings)."""
    return [*job.args, *(o for o in extra if not o.lstrip("+~").startswith("hydra"))]


def same_config(job: Job, extra: list[str], saved: Path) -> bool:
    """The job folder's `.hydra/config.yaml` is the config the job composes today (start keys aside)."""
    expected = OmegaConf.to_container(composed(tuple(config_overrides(job, extra))))
    found = OmegaConf.to_container(OmegaConf.load(saved))
    for config in (expected, found):
        for key in START_KEYS:
            config.pop(key, None)
    return expected == found


def prepare(state: JobState, extra: list[str]) -> None:
    """Decide whether the job is finished, continues from its checkpoint, or starts again in an empty folder."""
    job, folder = state.job, state.dir
    if job.spec.is_bench:
        result = folder / "result.json"
        if result.is_file() and _bench_command(result) == " ".join(["python", *job.args]):
            state.status = "finished"
            return
    else:
        saved = folder / ".hydra" / "config.yaml"
        if saved.is_file() and same_config(job, extra, saved):
            metrics = folder / "metrics.json"
            if metrics.is_file() and read_run(metrics).ok:
                state.status = "finished"
                return
            if (folder / "checkpoints" / "last.ckpt").is_file():
                state.resume = True
                return
    shutil.rmtree(folder, ignore_errors=True)


def _bench_command(result: Path) -> str:
    try:
        command = json.loads(result.read_text()).get("command", "")
    except (OSError, ValueError):
        return ""
    return " ".join(portable(command.split(" ")))


def command(state: JobState, extra: list[str]) -> list[str]:
    job = state.job
    if job.spec.is_bench:
        script, *arguments = job.args
        return [sys.executable, str(REPO_ROOT / script), *arguments, "--out", str(state.dir / "result.json")]
    resume = [f"resume={state.dir}"] if state.resume else []
    return [
        sys.executable,
        str(REPO_ROOT / "run.py"),
        *job.args,
        *extra,
        f"hydra.run.dir={state.dir}",
        *resume,
    ]


class Runner:
    """Runs the jobs `slots` at a time, printing one line per finished epoch (and every line of a bench)."""

    def __init__(self, states: list[JobState], slots: int, extra: list[str], threads: int = 1) -> None:
        self.states = states
        self.slots = max(1, slots)
        self.extra = extra
        self.threads = threads
        self.lines: queue.Queue[tuple[JobState, str | None]] = queue.Queue()
        self.stop_signal: int | None = None
        self.began = time.perf_counter()

    # -- the terminal
    def say(self, text: str) -> None:
        print(text, flush=True)

    def eta_minutes(self) -> float:
        """Minutes left: the estimates of what is left, corrected by how the finished jobs compared."""
        done = [s for s in self.states if s.status in ("ok", "failed") and s.seconds > 0]
        planned = sum(s.minutes for s in done)
        speed = min(5.0, max(0.2, sum(s.seconds / 60 for s in done) / planned)) if planned else 1.0
        left = sum(s.minutes for s in self.states if s.status == "pending")
        for s in self.states:
            if s.status == "running":
                fraction = s.epoch[0] / s.epoch[1] if s.epoch and s.epoch[1] else 0.0
                left += s.minutes * (1 - fraction)
        return left * speed / self.slots

    def progress(self) -> str:
        elapsed = (time.perf_counter() - self.began) / 60
        return f"{minutes_text(elapsed)} elapsed, ETA {minutes_text(self.eta_minutes())}"

    def on_line(self, state: JobState, line: str) -> None:
        with open(state.dir / "reproduce.log", "a") as log:
            log.write(line + "\n")
        state.tail.append(line)
        if state.job.spec.is_bench:
            self.say(f"[{state.job.label}] {line}")
            return
        match = EPOCH_LINE.search(line)
        if match:
            state.epoch = (int(match[1]), int(match[2]))
            shown = re.findall(r"(val/\S+ \S+)", match[3]) or [match[3]]
            self.say(
                f"[{state.job.label}] epoch {match[1]}/{match[2]} {'  '.join(shown)} ({match[4]}s) · "
                f"{self.progress()}"
            )
        elif line.startswith("error:") or "job failed" in line:
            self.say(f"[{state.job.label}] {line}")

    # -- the processes
    def start(self, state: JobState) -> None:
        state.dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.update({name: str(self.threads) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")})
        state.process = subprocess.Popen(
            command(state, self.extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,  # a Ctrl-C reaches reproduce, which stops the jobs itself
        )
        state.status, state.started = "running", time.perf_counter()
        how = "continues from its last.ckpt" if state.resume else "starts"
        self.say(f"[{state.job.label}] {how} ({state.dir}) · {self.progress()}")
        threading.Thread(target=self._read, args=(state,), daemon=True).start()

    def _read(self, state: JobState) -> None:
        assert state.process is not None and state.process.stdout is not None
        for line in state.process.stdout:
            self.lines.put((state, line.rstrip("\n")))
        self.lines.put((state, None))

    def _stop_handler(self, signum: int, frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self.say(
                f"reproduce: {signal.Signals(signum).name}: stopping the running jobs (they save a checkpoint)"
            )
            for state in self.states:
                if state.status == "running" and state.process is not None:
                    try:
                        os.killpg(state.process.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass

    def run(self, on_finished) -> int | None:
        """Run every pending job; `on_finished(state)` after each ends. The signal that stopped it, or None."""
        previous = {s: signal.signal(s, self._stop_handler) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            pending = deque(
                sorted((s for s in self.states if s.status == "pending"), key=lambda s: -s.minutes)
            )
            running: dict[int, JobState] = {}
            closed: set[int] = set()
            exited: dict[int, float] = {}
            stop_since = None
            while pending or running:
                while self.stop_signal is None and pending and len(running) < self.slots:
                    state = pending.popleft()
                    self.start(state)
                    running[id(state)] = state
                if self.stop_signal is not None and stop_since is None:
                    stop_since = time.perf_counter()
                    pending.clear()
                try:
                    state, line = self.lines.get(timeout=0.5)
                    if line is None:
                        closed.add(id(state))
                    else:
                        self.on_line(state, line)
                except queue.Empty:
                    pass
                for key, state in list(running.items()):
                    if state.process is None or state.process.poll() is None:
                        continue
                    exited.setdefault(key, time.perf_counter())
                    # its output is read to the end, or a process it left behind holds the pipe open
                    if key in closed or time.perf_counter() - exited[key] > 10:
                        del running[key]
                        self._finish(state)
                        on_finished(state)
                if stop_since is not None and time.perf_counter() - stop_since > STOP_WAIT_S:
                    for state in running.values():
                        if state.process is not None:
                            os.killpg(state.process.pid, signal.SIGKILL)
            return self.stop_signal
        finally:
            for number, handler in previous.items():
                signal.signal(number, handler)

    def _finish(self, state: JobState) -> None:
        assert state.process is not None
        state.seconds = time.perf_counter() - state.started
        code = state.process.returncode
        if self.stop_signal is not None and code != 0:
            state.status = "interrupted"
        else:
            state.status = "ok" if code == 0 else "failed"
        words = {"ok": "done", "failed": f"FAILED (exit {code})", "interrupted": "interrupted"}
        self.say(
            f"[{state.job.label}] {words[state.status]} in {minutes_text(state.seconds / 60)} · {self.progress()}"
        )
        if state.status == "failed":
            for line in list(state.tail)[-4:]:
                self.say(f"    {line}")
