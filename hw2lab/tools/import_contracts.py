"""An import-linter contract that finds the tasks itself, so a new task is covered without editing it.

A task is each module or package directly inside a room (`callbacks`, `lightning_modules`, `datamodules`)
that is not one of the rooms' shared modules: `callbacks.vae`, `lightning_modules.vae` and `datamodules.vae`
are the task `vae`. The contract is kept when no task imports another task's modules (in any room, directly
or through others) and no task-free module (the core, the tools, the shared modules) imports any task.
import-linter's own `forbidden` contracts would need every task listed by hand, once per other task.
"""

from __future__ import annotations

from collections import defaultdict

from grimp import ImportGraph
from importlinter.application import output
from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck


class TasksApartContract(Contract):
    """Options: `rooms` (the packages that hold tasks), `shared` (room modules that are no task) and
    `task_free` (modules, as packages, that may import no task: the core, the tools)."""

    type_name = "tasks_apart"

    rooms = fields.ListField(subfield=fields.StringField())
    shared = fields.ListField(subfield=fields.StringField())
    task_free = fields.ListField(subfield=fields.StringField())

    def tasks(self, graph: ImportGraph) -> dict[str, list[str]]:
        """Each task's modules, one per room it has files in."""
        found: dict[str, list[str]] = defaultdict(list)
        for room in self.rooms:  # type: ignore[attr-defined]
            for module in sorted(graph.find_children(room)):
                if module not in self.shared:  # type: ignore[attr-defined]
                    found[module.rsplit(".", 1)[1]].append(module)
        return dict(sorted(found.items()))

    def check(self, graph: ImportGraph, verbose: bool) -> ContractCheck:
        tasks = self.tasks(graph)
        importers = dict(tasks)
        importers[""] = [*self.task_free, *self.shared]  # type: ignore[attr-defined]
        broken = []
        for source_task, sources in importers.items():
            for target_task, targets in tasks.items():
                if target_task == source_task:
                    continue
                for source in sources:
                    for target in targets:
                        chain = graph.find_shortest_chain(importer=source, imported=target, as_packages=True)
                        if chain:
                            broken.append({"importer": source, "imported": target, "chain": list(chain)})
        return ContractCheck(kept=not broken, metadata={"broken": broken, "tasks": sorted(tasks)})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for item in check.metadata["broken"]:
            output.print_error(f"{item['importer']} is not allowed to import {item['imported']}:")
            output.new_line()
            output.print_error(f"-   {' -> '.join(item['chain'])}", bold=False)
            output.new_line()
