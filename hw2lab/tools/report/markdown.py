"""The rows as Markdown: the report's tables and README's results block."""

from __future__ import annotations

import re
from pathlib import Path

from hw2lab import tables
from hw2lab.tools.declared import token_key
from hw2lab.tools.plan import course_setting, minutes_text
from hw2lab.tools.report.rows import Row, beside_text, course_text

README_BEGIN = "<!-- results:begin (written by `python -m hw2lab.report --readme` from results/) -->"
README_END = "<!-- results:end -->"
DOC_BEGIN = "<!-- results:begin (written by python -m hw2lab.report) -->"


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


def readme_block(rows: list[Row], reproductions: dict[str, dict] | None = None) -> str:
    shown = [row for row in rows if row.readme]
    lines = [README_BEGIN, "", *markdown_table(shown, with_machine=False), ""]
    lines += [reproduction_line(budget, (reproductions or {}).get(budget)) for budget in ("cpu", "full")]
    return "\n".join([*lines, "", README_END])


def reproduction_line(budget: str, record: dict | None) -> str:
    """How long a whole budget took as one reproduction, from its record (results/reproduction/<budget>.json)."""
    command = f"`python -m hw2lab.reproduce --budget {budget}`"
    if record is None:
        return f"- The whole {budget} budget ({command}): no record of it as one reproduction yet."
    cpu = record["machine"].get("cpu") or "?"
    where = f"{cpu}, {record['machine'].get('cpu_count')} cores, GPU {record['machine'].get('gpu') or 'none'}"
    sittings = len(record["sittings"])
    return (
        f"- The whole {budget} budget (`{record['command']}`): {minutes_text(record['elapsed_s'] / 60)} of wall"
        f"{f' over {sittings} sittings' if sittings > 1 else ''}, {minutes_text(record['summed_job_s'] / 60)} "
        f"of jobs ({len(record['jobs'])} jobs, {record['slots']} at a time, {record['threads']} torch thread"
        f"{'s' if record['threads'] != 1 else ''} each) on {where}, {record['date']}, commit "
        f"{str(record.get('git_commit'))[:7]} ([results/reproduction/{budget}.json]"
        f"(results/reproduction/{budget}.json))."
    )


def cpu_setting(row: Row) -> tuple[str, str]:
    """What the cpu budget runs against the course's: (cpu setting and why, the course's values)."""
    cpu, course = [], []
    for spec in row.specs:
        if spec.tokens("cpu") is None:
            cpu.append(f"not in the cpu budget: {spec.why}" if spec.why else "not in the cpu budget")
        elif spec.changed("cpu"):
            cpu.append(f"`{' '.join(spec.changed('cpu'))}`: {spec.why}")
            settings = [course_setting(spec, token_key(t)) for t in spec.changed("cpu")]
            course.append(f"`{' '.join(settings)}`")
        else:
            cpu.append("the course's")
    return "; ".join(dict.fromkeys(cpu)), "; ".join(dict.fromkeys(course))


def doc_block(rows: list[Row]) -> str:
    """A task's results block in docs/<task>.md: every row of its declaration, both budgets, the cpu setting
    beside the course's, the command and the date of the records."""
    header = ["figure", "cpu budget", "full budget (the course's settings)", "beside it (same runs)"]
    header += ["cpu setting", "the course's setting", "date", "command"]
    cells = []
    for row in rows:
        command = "<br>".join(f"`{c}`" for c in row.declared_commands)
        cells.append([row.label, *budget_cells(row), beside_text(row), *cpu_setting(row), row.date, command])
    task = rows[0].task if rows else "?"
    note = (
        f"Every row is declared in `conf/results/{task}.yaml` and filled from its run's records in "
        f"`results/{task}/` (several runs: mean ± sample sd); `python -m hw2lab.reproduce --budget cpu "
        f"--tasks {task}` regenerates the cpu column."
    )
    return "\n".join([DOC_BEGIN, "", note, "", *tables.markdown_table(header, cells), "", README_END])


def _replace_block(path: Path, begin: str, block: str) -> bool:
    text = path.read_text()
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise SystemExit(f"error: {path} has no results block ({begin} ... {README_END})")
    updated = pattern.sub(lambda _: block, text)
    path.write_text(updated)
    return updated != text


def rewrite_readme(readme: Path, rows: list[Row], reproductions: dict[str, dict] | None = None) -> bool:
    """Replace README's results block; True if it changed."""
    return _replace_block(readme, README_BEGIN, readme_block(rows, reproductions))


def rewrite_docs(docs: Path, rows: list[Row]) -> list[Path]:
    """Replace each docs/<task>.md's results block with its task's rows; the docs that changed."""
    changed = []
    for task in dict.fromkeys(row.task for row in rows):
        path = docs / f"{task}.md"
        if path.is_file() and _replace_block(path, DOC_BEGIN, doc_block([r for r in rows if r.task == task])):
            changed.append(path)
    return changed
