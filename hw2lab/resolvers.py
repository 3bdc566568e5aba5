"""OmegaConf resolvers used by conf/."""

import sys

from omegaconf import OmegaConf


def _stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def register_resolvers() -> None:
    # `${hw2lab.tty:}`: a progress bar for a person at a terminal, one-line epoch summaries in CI logs.
    if not OmegaConf.has_resolver("hw2lab.tty"):
        OmegaConf.register_new_resolver("hw2lab.tty", _stdout_is_terminal)
