"""The rows as Markdown: the report's tables and README's results block."""

from __future__ import annotations

import re
from pathlib import Path

from hw2lab import tables
from hw2lab.tools.report.rows import Row, beside_text, course_text

README_BEGIN = "<!-- results:begin (written by `python -m hw2lab.report --readme` from results/) -->"
README_END = "<!-- results:end -->"


# Settings that change nothing a row shows, left out of README's commands (the records keep them).
SHOWN_WITHOUT = re.compile(r"^(logger|num_threads|download|trainer\.enable_progress_bar|hydra[./]|paths\.)")


def compact_commands(commands: list[str]) -> list[str]:
    """README's form of a row's commands: without SHOWN_WITHOUT overrides, and commands that differ in one
    `key=value` only merged into one sweep (`python run.py -m ... key=a,b`)."""
    merged: list[tuple[list[str], int | None]] = []  # tokens, index of the swept token
    for command in commands:
        tokens = [t for t in command.split(" ") if not SHOWN_WITHOUT.match(t.lstrip("+~"))]
        for index, (group, swept) in enumerate(merged):
            differ = [i for i, (a, b) in enumerate(zip(group, tokens)) if a != b]
            if len(group) != len(tokens) or len(differ) != 1 or swept not in (None, differ[0]):
                continue
            i = differ[0]
            if "=" in tokens[i] and group[i].split("=", 1)[0] == tokens[i].split("=", 1)[0]:
                group[i] = f"{group[i]},{tokens[i].split('=', 1)[1]}"
                merged[index] = (group, i)
                break
        else:
            merged.append((tokens, None))
    shown = []
    for tokens, swept in merged:
        if swept is not None and tokens[:2] == ["python", "run.py"] and "-m" not in tokens:
            tokens = [*tokens[:2], "-m", *tokens[2:]]
        shown.append(" ".join(tokens))
    return sorted(dict.fromkeys(shown))


def budget_cells(row: Row) -> list[str]:
    """The cpu and the full figure of a row; "same settings" where both budgets compute the same thing."""
    cpu, full = row.figures["cpu"].measured, row.figures["full"].measured
    return [cpu, "same settings as cpu" if row.same_settings else full]


def markdown_table(rows: list[Row], with_machine: bool = True) -> list[str]:
    """The rows as a markdown table: with the machine, the commands of the records behind each figure (the
    report); without (README's form), the declared commands that produce the row."""
    header = ["task", "figure", "cpu budget", "full budget (the course's settings)", "course report"]
    header += ["beside it (same runs)", "date"]
    header += ["machine", "command"] if with_machine else ["command"]
    cells = []
    for row in rows:
        commands = compact_commands(row.commands) if with_machine else row.declared_commands
        command = "<br>".join(f"`{c}`" for c in commands)
        cells.append([row.task, row.label, *budget_cells(row), course_text(row), beside_text(row), row.date])
        cells[-1] += [row.machine if row.sources else "", command] if with_machine else [command]
    return tables.markdown_table(header, cells)


def readme_block(rows: list[Row]) -> str:
    shown = [row for row in rows if row.readme]
    return "\n".join([README_BEGIN, "", *markdown_table(shown, with_machine=False), "", README_END])


def rewrite_readme(readme: Path, rows: list[Row]) -> bool:
    """Replace README's results block; True if it changed."""
    text = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {readme} has no results block ({README_BEGIN} ... {README_END})")
    updated = pattern.sub(lambda _: readme_block(rows), text)
    readme.write_text(updated)
    return updated != text
