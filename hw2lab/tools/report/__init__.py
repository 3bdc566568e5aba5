"""The report of what hw2lab measured (`python -m hw2lab.report`, see cli.py), from result files only.

runs.py reads the runs, records.py writes and reads the committed records, rows.py fills the rows each task
declares (conf/results/<task>.yaml, read by hw2lab.tools.declared), markdown.py writes the tables and
README's block, page.py the HTML page; cli.py is the command.
"""

from hw2lab.tools.report.cli import main
from hw2lab.tools.report.markdown import (
    DOC_BEGIN,
    README_BEGIN,
    README_END,
    budget_cells,
    compact_commands,
    doc_block,
    markdown_table,
    readme_block,
    rewrite_docs,
    rewrite_readme,
)
from hw2lab.tools.report.page import write_report
from hw2lab.tools.report.records import (
    load_bench_records,
    load_bench_results,
    load_reproductions,
    portable,
    record,
    record_bench,
)
from hw2lab.tools.report.rows import Row, as_typed, build_rows, load_spec, summarise, value_at
from hw2lab.tools.report.runs import Run, collect_runs, run_from_metrics

__all__ = [
    "DOC_BEGIN",
    "README_BEGIN",
    "README_END",
    "Row",
    "Run",
    "as_typed",
    "budget_cells",
    "build_rows",
    "collect_runs",
    "compact_commands",
    "doc_block",
    "load_bench_records",
    "load_bench_results",
    "load_reproductions",
    "load_spec",
    "main",
    "markdown_table",
    "portable",
    "readme_block",
    "record",
    "record_bench",
    "rewrite_docs",
    "rewrite_readme",
    "run_from_metrics",
    "summarise",
    "value_at",
    "write_report",
]
