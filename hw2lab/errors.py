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
