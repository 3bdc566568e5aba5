"""The commands built on hw2lab's core: the report, reproduce, the Optuna search report and the Optuna sweeper.

The core (hw2lab/) never imports them, and they import no task (pyproject.toml's import contracts).
Users type them as `python -m hw2lab.report`, `python -m hw2lab.reproduce`, `python -m hw2lab.search_report`
(thin modules in hw2lab/ that forward here) and `hydra/sweeper=optuna_study` (hydra_plugins/).
"""
