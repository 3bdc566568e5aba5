"""OmegaConf resolvers used by conf/."""

import sys
from datetime import datetime
from pathlib import Path

from omegaconf import OmegaConf


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def run_dir(resume: object, base: str) -> str:
    """A new timestamped run dir under `base`, or the dir of the run to resume.

    `resume` is null/false (a new run), a run dir, or true (the newest run under `base` that has
    checkpoints/last.ckpt). Microseconds in the name keep two runs started in the same second apart.
    """
    if resume in (None, False, "", "false", "False"):
        return f"{base}/{datetime.now():%Y-%m-%d}/{datetime.now():%H-%M-%S-%f}"
    if resume in (True, "true", "True"):
        candidates = sorted(Path(base).glob("*/*/checkpoints/last.ckpt"))
        if not candidates:
            from hw2lab.errors import HW2LabError

            raise HW2LabError(f"resume=true: no run under {base} has checkpoints/last.ckpt")
        return str(candidates[-1].parents[1])
    return str(resume)


def register_resolvers() -> None:
    # `${hw2lab.tty:}`: a progress bar for a person at a terminal, one-line epoch summaries in CI logs.
    if not OmegaConf.has_resolver("hw2lab.tty"):
        OmegaConf.register_new_resolver("hw2lab.tty", _stdout_is_terminal)
    # Cached like Hydra's own `now`, so every read of hydra.run.dir gives the same folder.
    if not OmegaConf.has_resolver("hw2lab.run_dir"):
        OmegaConf.register_new_resolver("hw2lab.run_dir", run_dir, use_cache=True)
