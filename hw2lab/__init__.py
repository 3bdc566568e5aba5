"""Shared plumbing of hw2lab: errors, data files, the run pipeline and the sweep summary; the commands built on
it (report, reproduce, the Optuna sweeper and search report) are hw2lab.tools.

Importing the package registers hw2lab's OmegaConf resolvers, so configs composed outside `run.py`
(tests, notebooks) resolve the same way.
"""

from hw2lab.errors import HW2LabError
from hw2lab.resolvers import register_resolvers

register_resolvers()

__all__ = ["HW2LabError"]
