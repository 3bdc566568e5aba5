"""hw2lab's Optuna sweeper as Hydra finds it: Hydra instantiates sweepers only from the `hydra_plugins`
namespace package, so the class lives here by name; the code is hw2lab.optuna_sweeper."""

from hw2lab.optuna_sweeper import OptunaSweeper as _OptunaSweeper


class OptunaSweeper(_OptunaSweeper):
    """conf/hydra/sweeper/optuna_study.yaml: `_target_: hydra_plugins.hw2lab_optuna_sweeper.OptunaSweeper`."""
