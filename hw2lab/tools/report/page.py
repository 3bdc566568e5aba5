"""report/index.html (one static page) and report/README.md, with the figures copied beside them."""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

from hw2lab import tables
from hw2lab.tools.declared import REPO_ROOT
from hw2lab.tools.report.markdown import budget_cells, markdown_table
from hw2lab.tools.report.rows import NOT_IN_BUDGET, NOT_RUN, Row, beside_text, course_text, machine_text


def _html_with_code(text: str) -> str:
    """Escaped text whose `backticks` (the markdown of the labels) become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def shown_path(image: Path, root: Path) -> str:
    """Where a figure came from, as a reader finds it: relative to the report's root or to the repository."""
    for base in (root, REPO_ROOT):
        try:
            return image.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            continue
    return image.name


def write_report(
    rows: list[Row], benches: list[dict], comparisons: list[Path], out: Path, root: Path = Path(".")
) -> Path:
    """report/index.html (one static page, no scripts) and report/README.md, with the figures copied under
    report/figures/ (each captioned with where it came from, relative to `root` or the repository)."""
    out.mkdir(parents=True, exist_ok=True)
    figures_dir = out / "figures"
    shutil.rmtree(figures_dir, ignore_errors=True)
    tasks = list(dict.fromkeys(row.task for row in rows))
    body = [
        "<h1>hw2lab: what was measured</h1>",
        "<p>Every number below comes from a result file (committed records in <code>results/</code>, run "
        'outputs, bench results); the command that produced it is beside it. "not run" means no result '
        "file holds that figure yet.</p>",
    ]
    md = [
        "# hw2lab: what was measured",
        "",
        'Every number comes from a result file; "not run" means none holds it yet.',
        "",
    ]
    for task in tasks:
        task_rows = [row for row in rows if row.task == task]
        body.append(f'<h2 id="{task}">{task}</h2>')
        body.append(_html_table(task_rows))
        md += [f"## {task}", "", *markdown_table(task_rows), ""]
        images = []
        for row in task_rows:
            for run in row.sources[:1]:  # the figures of one run per row
                images += run.figures
        images += [p for p in comparisons if f"/{task}/" in str(p)]
        for index, image in enumerate(images):
            copy = figures_dir / task / f"{index:02d}-{image.name}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image, copy)
            relative = copy.relative_to(out).as_posix()
            body.append(
                f'<figure><img src="{relative}" alt="{html.escape(image.stem)}" loading="lazy">'
                f"<figcaption>{html.escape(shown_path(image, root))}</figcaption></figure>"
            )
            md.append(f"![{image.stem}]({relative})")
        md.append("")
    if benches:
        body.append(
            '<h2 id="bench">bench</h2><table><tr><th>bench</th><th>result</th><th>date</th>'
            "<th>machine</th><th>command</th></tr>"
        )
        bench_rows = []
        for bench in benches:
            result = json.dumps(bench.get("result", {}), sort_keys=True)[:300]
            cells = [
                bench.get("bench", ""),
                result,
                bench.get("date", "")[:10],
                machine_text(bench.get("machine", {})),
                bench.get("command", ""),
            ]
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
            bench_rows.append(cells)
        body.append("</table>")
        md += [
            "## bench",
            "",
            *tables.markdown_table(["bench", "result", "date", "machine", "command"], bench_rows),
        ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>hw2lab report</title>'
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
    (out / "index.html").write_text(page)
    (out / "README.md").write_text("\n".join(md) + "\n")
    return out / "index.html"


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0;font-size:14px}"
    "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}"
    "th{background:#f2f2f2}td.notrun{color:#999;font-style:italic}code{font-size:12px}"
    "figure{display:inline-block;margin:8px;max-width:560px}img{max-width:100%;border:1px solid #ddd}"
    "figcaption{font-size:11px;color:#666;word-break:break-all}"
)


NOT_RUN_CELL = '<td class="notrun">'


def _html_table(rows: list[Row]) -> str:
    header = [
        "figure",
        "cpu budget",
        "full budget",
        "course report",
        "beside it (same runs)",
        "date",
        "machine",
    ]
    header += ["command"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for row in rows:
        commands = "<br>".join(f"<code>{html.escape(c)}</code>" for c in row.commands)
        figures = [
            (NOT_RUN_CELL if text in (NOT_RUN, NOT_IN_BUDGET) else "<td>") + f"{html.escape(text)}</td>"
            for text in budget_cells(row)
        ]
        cells = [
            f"<td>{_html_with_code(row.label)}</td>",
            *figures,
            f"<td>{html.escape(course_text(row))}</td>",
            f"<td>{html.escape(beside_text(row))}</td>",
            f"<td>{html.escape(row.date)}</td>",
            f"<td>{html.escape(row.machine if row.sources else '')}</td>",
            f"<td>{commands}</td>",
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)
