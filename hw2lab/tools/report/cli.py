"""One report of what hw2lab measured, from result files only.

    python -m hw2lab.report                       # report/index.html and report/README.md
    python -m hw2lab.report --record multirun/covid/2026-12-01/10-00-00-000000   # commit a sweep's figures
    python -m hw2lab.report --record bench/results/covid-20261201-055504.json    # ... or a bench's
    python -m hw2lab.report --readme              # rewrite README's and docs/<task>.md's results blocks

Sources: the committed records in `results/` (small JSON files written by `--record`: per run its command,
date, machine, overrides and metrics; per bench result its command, date, machine and result without the
per-run bulk), every finished run's `metrics.json` under `outputs/` and `multirun/` (with its `figures/`),
each sweep's `comparison.png` (not a smoke sweep's: smoke runs are never results), and the bench JSON files in `bench/results/`. The rows a task shows, and the
run behind each, are declared in `conf/results/<task>.yaml`; the course reports' numbers are
`hw2lab/tools/report/data/course_reports.yaml`.
A row with no matching result says "not run": the report never shows a number that no result file holds.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hw2lab.tools.report.markdown import rewrite_docs, rewrite_readme
from hw2lab.tools.report.page import write_report
from hw2lab.tools.report.records import load_bench_records, load_bench_results, load_reproductions, record
from hw2lab.tools.report.rows import build_rows, load_spec
from hw2lab.tools.report.runs import collect_runs, run_from_metrics

REPO_ROOT = Path(__file__).resolve().parents[3]


def is_result(comparison: Path) -> bool:
    """A sweep's figure is a result when one of its jobs is (finished, not a smoke run)."""
    return any(run_from_metrics(path) is not None for path in comparison.parent.glob("*/metrics.json"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m hw2lab.report", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="where outputs/, multirun/ and bench/ are"
    )
    parser.add_argument("--results", type=Path, default=REPO_ROOT / "results", help="the committed records")
    parser.add_argument("--out", type=Path, default=Path("report"), help="where index.html and README.md go")
    parser.add_argument(
        "--record", type=Path, nargs="+", help="write records of these run or sweep dirs or bench JSON files"
    )
    parser.add_argument(
        "--readme",
        type=Path,
        nargs="?",
        const=REPO_ROOT / "README.md",
        help="rewrite README's results block (and each docs/<task>.md's) from the committed records only",
    )
    parser.add_argument(
        "--docs", type=Path, default=REPO_ROOT / "docs", help="the task docs --readme rewrites"
    )
    args = parser.parse_args(argv)
    if args.record:
        for source in args.record:
            print(f"recorded {source} in {record(source, args.results)}")
        return
    spec, course = load_spec()
    bench_records = load_bench_records(args.results)
    if args.readme:
        rows = build_rows(collect_runs([], args.results), spec, course, bench_records)
        changed = rewrite_readme(args.readme, rows, load_reproductions(args.results))
        print(f"{args.readme}: results block {'rewritten' if changed else 'already up to date'}")
        docs = rewrite_docs(args.docs, rows)
        print(
            f"{args.docs}: results blocks rewritten in {', '.join(p.name for p in docs) or 'none (up to date)'}"
        )
        return
    roots = [args.root / "outputs", args.root / "multirun", args.root / "reproduce"]
    rows = build_rows(collect_runs(roots, args.results), spec, course, bench_records)
    comparisons = [
        path for root in roots[1:] for path in sorted(root.glob("**/comparison.png")) if is_result(path)
    ]
    benches = load_bench_results(args.root / "bench" / "results")
    shown = {(b.get("command"), b.get("date")) for b in benches}
    benches += [b for b in bench_records.values() if (b["command"], b["date"]) not in shown]
    page = write_report(rows, benches, comparisons, args.out, args.root)
    filled = sum(row.measured != "not run" for row in rows)
    print(f"report: {page} ({filled} of {len(rows)} rows measured)")
