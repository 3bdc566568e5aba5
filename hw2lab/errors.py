"""One exception type for problems the user can fix (missing data, bad values, malformed files)."""

from hydra.errors import CompactHydraException


class HW2LabError(CompactHydraException):
    """Printed by Hydra as one line, without a traceback, and the run exits non-zero.

    Raise it for anything a user can fix from the message alone; let real bugs raise what they raise.
    """


def check(condition: bool, message: str) -> None:
    """Raise HW2LabError(message) unless condition holds: config validation in one line."""
    if not condition:
        raise HW2LabError(message)


def one_line(error: BaseException) -> str:
    """An error as one line for logs and metrics.json: a user error's message as it is, any other error's
    type in front of its message (or the type alone when it has none)."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if isinstance(error, HW2LabError) else f"{type(error).__name__}: {text}"
