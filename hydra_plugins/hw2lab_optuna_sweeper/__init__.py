"""hw2lab's Optuna sweeper as Hydra finds it: Hydra instantiates sweepers only from the `hydra_plugins`
namespace package, so the class lives here by name; the code is hw2lab.tools.optuna_sweeper.

Hydra imports every plugin module at each multirun, so this one imports nothing of Optuna until the sweeper is
used: without the `sweeps` extra, other sweeps run without a warning, and this sweeper says what to install.
"""

from typing import Any

from hydra.plugins.sweeper import Sweeper


class OptunaSweeper(Sweeper):
    """conf/hydra/sweeper/optuna_study.yaml: `_target_: hydra_plugins.hw2lab_optuna_sweeper.OptunaSweeper`."""

    def __init__(self, **config: Any) -> None:
        try:
            from hw2lab.tools.optuna_sweeper import OptunaSweeper as Implementation
        except ImportError as error:
            from hw2lab.errors import HW2LabError

            raise HW2LabError(
                f"hydra/sweeper=optuna_study needs the sweeps extra: pip install -e '.[sweeps]' ({error})"
            ) from None
        self.implementation = Implementation(**config)

    def setup(self, **kwargs: Any) -> None:
        self.implementation.setup(**kwargs)

    def sweep(self, arguments: list[str]) -> Any:
        return self.implementation.sweep(arguments)
