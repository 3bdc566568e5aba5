"""Run the sweeps behind every row of the report, then write the report.

    python -m hw2lab.reproduce --budget smoke                 # a few batches per run: tries the whole path
    python -m hw2lab.reproduce --budget cpu --tasks vae,covid # the settings that fit a laptop CPU
    python -m hw2lab.reproduce --budget full hydra/launcher=submitit_slurm hydra.launcher.partition=gpu

Budgets: `smoke` (trainer=debug: every run a few batches; for trying it out and for the slow test tier),
`cpu` (each task's documented CPU settings), `full` (the course's settings; a GPU expected). Anything after
the options is passed to every sweep (e.g. a Hydra launcher), so the same command fans out on a cluster.
A sweep that fails is reported and the others still run; the exit status is non-zero if any failed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from hw2lab.tools import report

REPO_ROOT = Path(__file__).resolve().parents[2]
BUDGETS = ("smoke", "cpu", "full")


@dataclass(frozen=True)
class Sweep:
    """One `run.py -m` command of the plan, with its settings per budget and its cost estimate."""

    task: str
    name: str
    overrides: tuple[str, ...]  # what every budget runs
    runs: int  # jobs in the sweep
    cpu_minutes_per_run: float  # on a 2-core CPU with the cpu budget, one run at a time (see PLAN)
    budget_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)
    seeds: bool = False  # repeat over SEEDS (not in a smoke run)

    def jobs(self, budget: str) -> int:
        return self.runs * (len(SEEDS) if self.seeds and budget != "smoke" else 1)

    def command(self, budget: str, sweep_dir: Path, extra: list[str]) -> list[str]:
        if budget == "smoke":
            settings: tuple[str, ...] = ("trainer=debug",)
        else:
            settings = self.budget_overrides.get(budget, ())
            if self.seeds:
                settings += ("seed=" + ",".join(map(str, SEEDS)),)
        return [
            sys.executable,
            str(REPO_ROOT / "run.py"),
            "-m",
            *self.overrides,
            *settings,
            *extra,
            f"hydra.sweep.dir={sweep_dir}",
        ]

    def minutes(self, budget: str) -> float:
        per_run = {"smoke": 0.1, "cpu": self.cpu_minutes_per_run, "full": 4 * self.cpu_minutes_per_run}[
            budget
        ]
        return STARTUP_MINUTES + per_run * self.jobs(budget)


# Starting a sweep (imports, composing, reading the data) costs 15-60 s whatever the budget.
STARTUP_MINUTES = 0.4


SEEDS = (42, 1, 2)
PLAN: tuple[Sweep, ...] = (
    # The per-run minutes are the walls of `--budget cpu` runs (2026-12-02, a job on the other core) where
    # one was made; the others come from the same settings' single runs in the task's docs.
    Sweep("vae", "λ sweep, the course's MLP, TibetanMNIST", ("experiment=vae_kl_tibetan",), 4, 0.5),
    Sweep(
        "vae", "best model, conv + FC, TibetanMNIST", ("experiment=vae_conv_tibetan",), 1, 13.0, seeds=True
    ),
    # 100 epochs of the conv VAE on 6,750 faces of 64 px: 75.6 min measured (2026-12-02).
    Sweep("vae", "conv VAE, anime faces", ("experiment=vae_conv_anime",), 1, 76.0),
    Sweep(
        "vae",
        "Bernoulli against Gaussian decoder, anime faces",
        ("experiment=vae_anime_likelihood",),
        2,
        17.0,
    ),
    Sweep(
        "covid",
        "L × cell, course file",
        ("task=covid", "interval=3,5,7", "cell=rnn,lstm,gru"),
        9,
        0.2,
        seeds=True,
    ),
    Sweep("news", "headlines, LSTM + GloVe", ("experiment=news_lstm_glove",), 1, 1.3, seeds=True),
    Sweep("news", "headlines, tokenizers", ("task=news", "data.tokenizer=regexp,word,split"), 3, 1.3),
    Sweep("news", "headlines, MiniLM", ("experiment=news_transformer_title",), 1, 4.0),
    Sweep("food", "default CNN with and without L2", ("task=food", "weight_decay=0,1e-4"), 2, 45.0),
    Sweep(
        "food",
        "the report's CNN with and without L2",
        ("experiment=food_report_cnn3", "weight_decay=0,1e-3"),
        2,
        5.0,
    ),
    Sweep(
        "charlm",
        "RNN, LSTM and GRU, 15 minutes each",
        (
            "task=charlm",
            "cell=rnn,lstm,gru",
            "trainer.max_epochs=4",
            "+trainer.max_time=00:00:15:00",
            "data.split=[0.9,0.05,0.05]",
        ),
        3,
        15.0,
    ),
)
TASKS = tuple(dict.fromkeys(sweep.task for sweep in PLAN))


def plan(budget: str, tasks: list[str]) -> list[Sweep]:
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise SystemExit(f"error: unknown task(s) {', '.join(unknown)}; the tasks are {', '.join(TASKS)}")
    if budget not in BUDGETS:
        raise SystemExit(f"error: --budget must be one of {', '.join(BUDGETS)}, got {budget!r}")
    return [sweep for sweep in PLAN if sweep.task in tasks]


def _minutes(value: float) -> str:
    return f"{value:.0f} min" if value >= 1 else f"{value * 60:.0f} s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hw2lab.reproduce", description=__doc__.split("\n")[0])
    parser.add_argument("--budget", default="smoke", help="smoke | cpu | full")
    parser.add_argument("--tasks", default=",".join(TASKS), help="comma-separated, default all")
    parser.add_argument(
        "--out", type=Path, default=Path("multirun") / "reproduce", help="where the sweeps go"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and its estimate, run nothing")
    args, extra = parser.parse_known_args(argv)
    sweeps = plan(args.budget, [t for t in args.tasks.split(",") if t])
    stamp = datetime.now().strftime("%Y-%m-%d/%H-%M-%S")
    estimate = sum(sweep.minutes(args.budget) for sweep in sweeps)
    print(
        f"reproduce: budget {args.budget}, {len(sweeps)} sweeps, {sum(s.jobs(args.budget) for s in sweeps)} runs, "
        f"estimated {_minutes(estimate)} on a 2-core CPU",
        flush=True,
    )
    failed, started = [], time.perf_counter()
    for index, sweep in enumerate(sweeps, start=1):
        sweep_dir = args.out / stamp / sweep.task / f"{index:02d}"
        command = sweep.command(args.budget, sweep_dir, extra)
        print(
            f"[{index}/{len(sweeps)}] {sweep.task}: {sweep.name} ({sweep.jobs(args.budget)} runs, ~{_minutes(sweep.minutes(args.budget))})"
            f"\n    python run.py {' '.join(command[2:])}",
            flush=True,
        )
        if args.dry_run:
            continue
        began = time.perf_counter()
        result = subprocess.run(command, cwd=Path.cwd(), capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        done = sum(s.minutes(args.budget) for s in sweeps[:index])
        left = max(0.0, (estimate - done) * (elapsed / 60) / max(done, 1e-9))
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(
            f"    {status} in {time.perf_counter() - began:.0f} s; {index}/{len(sweeps)} done, "
            f"{elapsed / 60:.1f} min elapsed, ~{left:.0f} min left",
            flush=True,
        )
        if result.returncode != 0:
            failed.append(sweep)
            tail = [line for line in result.stderr.splitlines() if line.strip()][-3:]
            print("    " + "\n    ".join(tail), flush=True)
    if args.dry_run:
        return 0
    report.main(["--root", str(Path.cwd())])
    if failed:
        print(
            f"reproduce: {len(failed)} of {len(sweeps)} sweeps failed: "
            + "; ".join(f"{s.task}: {s.name}" for s in failed),
            file=sys.stderr,
        )
        return 1
    print(f"reproduce: all {len(sweeps)} sweeps finished in {(time.perf_counter() - started) / 60:.1f} min")
    return 0
