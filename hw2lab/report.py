"""One report of what hw2lab measured, from result files only.

    python -m hw2lab.report                       # report/index.html and report/README.md
    python -m hw2lab.report --record multirun/covid/2026-12-01/10-00-00-000000   # commit a sweep's figures
    python -m hw2lab.report --record bench/results/covid-20261201-055504.json    # ... or a bench's
    python -m hw2lab.report --readme              # rewrite README's results block from results/

Sources: the committed records in `results/` (small JSON files written by `--record`: per run its command,
date, machine, overrides and metrics; per bench result its command, date, machine and result without the
per-run bulk), every finished run's `metrics.json` under `outputs/` and `multirun/` (with its `figures/`),
each sweep's `comparison.png`, and the bench JSON files in `bench/results/`. The rows a task shows are
`hw2lab/report_data/rows.yaml`; the course reports' numbers are `hw2lab/report_data/course_reports.yaml`.
A row with no matching result says "not run": the report never shows a number that no result file holds.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import re
import shutil
import statistics
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "report_data"
README_BEGIN = "<!-- results:begin (written by `python -m hw2lab.report --readme` from results/) -->"
README_END = "<!-- results:end -->"
# Smoke runs are not results.
SMOKE_OVERRIDES = re.compile(r"^(trainer=debug|trainer\.limit_\w+=|trainer\.fast_dev_run=)")


@dataclass
class Run:
    """One finished run, from its metrics.json or from a committed record."""

    task: str
    command: str
    date: str
    machine: dict[str, Any]
    overrides: list[str]
    metrics: dict[str, float]
    hparams: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the metrics.json or record it came from
    figures: list[Path] = field(default_factory=list)

    @property
    def settings(self) -> dict[str, str]:
        """Overrides as {key: value}, Hydra's backslash escapes removed (`00\\:15` is `00:15`)."""
        pairs = (o.lstrip("+~").split("=", 1) for o in self.overrides if "=" in o)
        return {key: re.sub(r"\\(.)", r"\1", value) for key, value in pairs}

    def lookup(self, key: str) -> tuple[bool, Any]:
        """A setting by the name a row uses: an override as typed, `task`, or a hyper-parameter (its full
        flattened name, or the last part of it when only one hyper-parameter ends so)."""
        if key == "task":
            return True, self.task
        if key in self.settings:
            return True, self.settings[key]
        if key in self.hparams:
            return True, self.hparams[key]
        ending = [value for name, value in self.hparams.items() if name.endswith("." + key)]
        return (True, ending[0]) if len(ending) == 1 else (False, None)

    def matches(self, where: dict[str, Any]) -> bool:
        """True for exactly the row's configuration: every `where` key as wanted, and no other override that
        changes what is computed (seeds, loggers, threads, devices and Hydra's own settings do not)."""
        if any(key not in where and not _incidental(key) for key in self.settings):
            return False
        for key, wanted in where.items():
            if wanted is None:  # not overridden
                if key in self.settings:
                    return False
                continue
            found, value = self.lookup(key)
            if not found or not _same(value, wanted):
                return False
        return True


INCIDENTAL = {
    "seed",
    "logger",
    "num_threads",
    "download",
    "test",
    "resume",
    "matmul_precision",
    "trainer",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.precision",
    "trainer.enable_progress_bar",
}
INCIDENTAL_PREFIXES = ("hydra.", "hydra/", "paths.")


def _incidental(key: str) -> bool:
    return key in INCIDENTAL or key.startswith(INCIDENTAL_PREFIXES)


def _same(value: Any, wanted: Any) -> bool:
    try:
        return math.isclose(float(value), float(wanted))
    except (TypeError, ValueError):
        return str(value) == str(wanted)


# -- reading
def run_from_metrics(path: Path) -> Run | None:
    data = json.loads(path.read_text())
    if data.get("status") != "ok" or any(SMOKE_OVERRIDES.match(o) for o in data.get("overrides", [])):
        return None
    figures = sorted((path.parent / "figures").glob("*.png"))
    # metrics.json is written when the run ends: its time stands in for a date that older files lack.
    date = data.get("date") or datetime.fromtimestamp(path.stat().st_mtime).isoformat(timespec="seconds")
    return Run(
        task=data.get("task", ""),
        command=data.get("command") or " ".join(["python run.py", *data.get("overrides", [])]),
        date=date[:10],
        machine=data.get("machine") or {},
        overrides=list(data.get("overrides", [])),
        metrics=data.get("metrics", {}),
        hparams=data.get("hparams", {}),
        source=str(path),
        figures=figures,
    )


def collect_runs(roots: list[Path], records: Path) -> list[Run]:
    """Every finished, non-smoke run below `roots`, and every run of the committed records."""
    runs = []
    for root in roots:
        for path in sorted(root.glob("**/metrics.json")) if root.is_dir() else []:
            run = run_from_metrics(path)
            if run is not None:
                runs.append(run)
    seen = {(r.command, r.date, json.dumps(r.metrics, sort_keys=True)) for r in runs}
    for path in sorted(records.glob("**/*.json")) if records.is_dir() else []:
        for item in json.loads(path.read_text()).get("runs", []):
            run = Run(
                **{k: item[k] for k in ("task", "command", "date", "machine", "overrides", "metrics")},
                hparams=item.get("hparams", {}),
                source=str(path),
            )
            key = (run.command, run.date, json.dumps(run.metrics, sort_keys=True))
            if key not in seen:
                seen.add(key)
                runs.append(run)
    return runs


# Where a run or bench wrote its files on that machine: true there, noise in a record.
OUTPUT_LOCATION = re.compile(r"^(paths\.output_dir|hydra\.run\.dir|hydra\.sweep\.dir|--out)=")


def portable(tokens: list[str]) -> list[str]:
    """The tokens without the output location (`paths.output_dir=`, `hydra.*.dir=`, a bench's `--out F`)."""
    kept, skip = [], False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--out":
            skip = True
        elif not OUTPUT_LOCATION.match(token):
            kept.append(token)
    return kept


def record(source: Path, records: Path) -> Path:
    """Commit-sized record of a run or sweep folder, or of a bench result file (see `record_bench`).

    A run's or sweep's record holds per finished run its command, date, machine, overrides,
    hyper-parameters and metrics (no figures, no checkpoints), in `results/<task>/<folder name>.json`."""
    if source.name == "metrics.json":
        source = source.parent
    if source.is_file():
        return record_bench(source, records)
    paths = (
        [source / "metrics.json"]
        if (source / "metrics.json").is_file()
        else sorted(source.glob("*/metrics.json"))
    )
    runs = [run for run in map(run_from_metrics, paths) if run is not None]
    if not runs:
        raise SystemExit(f"error: no finished run (metrics.json with status ok) in {source}")
    target = records / runs[0].task / f"{_record_name(source)}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "runs": [
            {
                "task": r.task,
                "command": " ".join(portable(r.command.split(" "))),
                "date": r.date,
                "machine": r.machine,
                "overrides": portable(r.overrides),
                "hparams": r.hparams,
                "metrics": r.metrics,
            }
            for r in runs
        ],
    }
    target.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return target


def _record_name(folder: Path) -> str:
    """The folder's name; a Hydra time folder (`10-00-00-000000`) with its date folder in front."""
    parts = folder.resolve().parts
    return f"{parts[-2]}-{parts[-1]}" if re.match(r"^\d\d-\d\d-\d\d", parts[-1]) else parts[-1]


# A run of a bench keeps what rows cite: its seed/fold/origin and the model's own test scores.
BENCH_RUN_KEYS = re.compile(r"^(seed|origin|fold|test/[^_]+)$")


def record_bench(path: Path, records: Path) -> Path:
    """Record of a bench result (`write_bench_result`'s JSON) in `results/<bench>/<file stem>.json`: its
    command (without `--out`), date, machine and result, where each run in a list named `runs` keeps only
    BENCH_RUN_KEYS (training curves and baselines repeated per seed are bulk; the summaries stay)."""
    data = json.loads(path.read_text())
    missing = {"bench", "command", "date", "machine", "result"} - set(data)
    if missing:
        raise SystemExit(f"error: {path} is not a bench result (no {', '.join(sorted(missing))})")
    payload = {
        "bench": data["bench"],
        "command": " ".join(portable(data["command"].split(" "))),
        "date": data["date"],
        "machine": data["machine"],
        "result": _compact(data["result"]),
    }
    target = records / data["bench"] / f"{path.stem}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(payload, indent=1, sort_keys=True) + "\n")
    return target


def _compact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _compact(v, k) for k, v in value.items()}
    if isinstance(value, list):
        if key == "runs":
            return [
                {k: v for k, v in run.items() if BENCH_RUN_KEYS.match(k)} if isinstance(run, dict) else run
                for run in value
            ]
        return [_compact(item) for item in value]
    return value


def load_bench_records(records: Path) -> dict[str, dict[str, Any]]:
    """The committed bench records by the name a row gives them: `<bench>/<file stem>`."""
    found = {}
    for path in sorted(records.glob("*/*.json")) if records.is_dir() else []:
        data = json.loads(path.read_text())
        if "bench" in data:
            found[f"{path.parent.name}/{path.stem}"] = {**data, "source": str(path)}
    return found


def load_bench_results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


# -- the tables
@dataclass
class Row:
    """One line of a table: a figure, what holds it (runs, or one bench record shown as a Run) and what
    stands beside it."""

    task: str
    label: str
    measured: str
    beside: dict[str, str]
    course: dict[str, Any] | None
    sources: list[Run]
    readme: bool = True

    @property
    def commands(self) -> list[str]:
        return sorted({" ".join(map(as_typed, r.command.split(" "))) for r in self.sources})

    @property
    def date(self) -> str:
        return max((r.date for r in self.sources), default="")

    @property
    def machine(self) -> str:
        machines = {_machine_text(r.machine) for r in self.sources}
        return "; ".join(sorted(machines))


def _numbers(values: list[Any]) -> list[float]:
    return [
        float(v)
        for v in values
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    ]


def summarise(values: list[Any]) -> str:
    """'0.812' for one value, 'mean ± sd (n = k)' for several, 'not run' for none."""
    numbers = _numbers(values)
    if not numbers:
        return "not run"
    if len(numbers) == 1:
        return f"{numbers[0]:.4g}"
    return f"{statistics.mean(numbers):.4g} ± {statistics.stdev(numbers):.2g} (n = {len(numbers)})"


def _machine_text(machine: dict[str, Any]) -> str:
    if not machine:
        return "unknown"
    text = f"{machine.get('cpu', '?')} ({machine.get('cpu_count', '?')} cores)"
    return f"{text}, {machine['gpu']}" if machine.get("gpu") else f"{text}, no GPU"


def value_at(data: Any, path: list[Any]) -> list[Any]:
    """The values at `path` in a bench result: a key, a list index, `{key: value, ...}` (the list item with
    those values) or "*" (every item: several values, summarised as mean ± sd). [] where it leads nowhere."""
    found = [data]
    for step in path:
        following = []
        for item in found:
            if step == "*" and isinstance(item, list):
                following += item
            elif isinstance(step, dict) and isinstance(item, list):
                following += [
                    x
                    for x in item
                    if isinstance(x, dict) and all(k in x and _same(x[k], v) for k, v in step.items())
                ][:1]
            elif isinstance(step, int) and isinstance(item, list) and -len(item) <= step < len(item):
                following.append(item[step])
            elif isinstance(item, dict) and not isinstance(step, dict) and str(step) in item:
                following.append(item[str(step)])
        found = following
    return found


def _path(key: Any) -> list[Any]:
    return list(key) if isinstance(key, list) else [key]


def _named(keys: Any, short: bool = False) -> dict[str, Any]:
    """`beside` / `best_of` as {shown name: key or path}: a mapping as written, or a list named by each key
    (its last path step; `short`: only what follows its last '_', e.g. acc_reversal -> reversal)."""
    if isinstance(keys, dict):
        return dict(keys)
    named = {}
    for key in keys or []:
        name = str(_path(key)[-1])
        named[name.rsplit("_", 1)[-1] if short else name] = key
    return named


def _beside(entry: dict[str, Any], values_of) -> dict[str, str]:
    """What stands beside a figure: the best of `best_of` (highest mean), then each of `beside`."""
    shown = {}
    candidates = {
        name: _numbers(values_of(key)) for name, key in _named(entry.get("best_of"), short=True).items()
    }
    candidates = {name: numbers for name, numbers in candidates.items() if numbers}
    if candidates:
        name = max(candidates, key=lambda n: statistics.mean(candidates[n]))
        shown["best baseline"] = f"{name} {summarise(candidates[name])}"
    for name, key in _named(entry.get("beside")).items():
        text = summarise(values_of(key))
        if text != "not run":
            shown[name] = text
    return shown


def build_rows(
    runs: list[Run],
    spec: dict[str, list[dict]],
    course: dict[str, dict],
    benches: dict[str, dict[str, Any]] | None = None,
) -> list[Row]:
    rows = []
    for task, entries in spec.items():
        for entry in entries:
            row = _bench_row(task, entry, benches or {}) if "bench" in entry else _run_row(task, entry, runs)
            row.course = course.get(entry.get("course"))
            row.readme = entry.get("readme", True)
            rows.append(row)
    return rows


def _run_row(task: str, entry: dict[str, Any], runs: list[Run]) -> Row:
    """A row filled by runs of exactly its configuration; with `over: {key: [values]}` one figure per value."""
    metric, where = entry["metric"], entry.get("where", {})

    def matching(extra: dict[str, Any]) -> list[Run]:
        wanted = {**where, **extra}
        return [r for r in runs if r.task == task and metric in r.metrics and r.matches(wanted)]

    if "over" in entry:
        ((key, values),) = entry["over"].items()
        parts, sources = [], []
        for value in values:
            matched = matching({key: value})
            sources += matched
            parts.append(f"{value}: {summarise([r.metrics[metric] for r in matched])}")
        measured = " · ".join(parts) if sources else "not run"
        return Row(task, entry["label"], measured, {}, None, sources)
    matched = matching({})
    measured = summarise([r.metrics[metric] for r in matched])
    beside = _beside(entry, lambda key: [r.metrics.get(key) for r in matched]) if matched else {}
    return Row(task, entry["label"], measured, beside, None, matched)


def _bench_row(task: str, entry: dict[str, Any], benches: dict[str, dict[str, Any]]) -> Row:
    """A row filled from one bench record (`bench: <bench>/<record>`), its values at `at` + `metric`."""
    bench = benches.get(entry["bench"])
    at = _path(entry.get("at", []))
    result = bench["result"] if bench else None
    values = value_at(result, [*at, *_path(entry["metric"])]) if bench else []
    measured = summarise(values)
    if measured == "not run":
        return Row(task, entry["label"], measured, {}, None, [])
    source = Run(
        bench["bench"], bench["command"], bench["date"][:10], bench["machine"], [], {}, source=bench["source"]
    )
    beside = _beside(entry, lambda key: value_at(result, [*at, *_path(key)]))
    return Row(task, entry["label"], measured, beside, None, [source])


def load_spec() -> tuple[dict[str, list[dict]], dict[str, dict]]:
    spec = yaml.safe_load((DATA / "rows.yaml").read_text())
    course = {item["id"]: item for item in yaml.safe_load((DATA / "course_reports.yaml").read_text())}
    return spec, course


def _course_text(row: Row) -> str:
    return f"{row.course['value']} ({row.course['report']})" if row.course else ""


def _html_with_code(text: str) -> str:
    """Escaped text whose `backticks` (the markdown of the labels) become <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _beside_text(row: Row) -> str:
    return "; ".join(f"{k} {v}" for k, v in row.beside.items())


# Settings that change nothing a row shows, left out of README's commands (the records keep them).
SHOWN_WITHOUT = re.compile(r"^(logger|num_threads|download|trainer\.enable_progress_bar|hydra[./]|paths\.)")


def as_typed(token: str) -> str:
    """An override as a user types it: Hydra's escapes removed, except `\\,` (which stops a sweep)."""
    return re.sub(r"\\([^,\\])", r"\1", token)


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


def markdown_table(rows: list[Row], with_machine: bool = True) -> list[str]:
    """The rows as a markdown table; without the machine column (README's form) the commands are compact."""
    header = ["task", "figure", "measured", "course report", "beside it (same runs)", "date"]
    header += ["machine", "command"] if with_machine else ["command"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        commands = row.commands if with_machine else compact_commands(row.commands)
        command = "<br>".join(f"`{c}`" for c in commands)
        cells = [row.task, row.label, row.measured, _course_text(row), _beside_text(row), row.date]
        cells += [row.machine if row.sources else "", command] if with_machine else [command]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


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


def write_report(rows: list[Row], benches: list[dict], comparisons: list[Path], out: Path) -> Path:
    """report/index.html (one static page, no scripts) and report/README.md, with the figures copied under
    report/figures/."""
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
                f"<figcaption>{html.escape(str(image))}</figcaption></figure>"
            )
            md.append(f"![{image.stem}]({relative})")
        md.append("")
    if benches:
        body.append(
            '<h2 id="bench">bench</h2><table><tr><th>bench</th><th>result</th><th>date</th>'
            "<th>machine</th><th>command</th></tr>"
        )
        md += ["## bench", "", "| bench | result | date | machine | command |", "|---|---|---|---|---|"]
        for bench in benches:
            result = json.dumps(bench.get("result", {}), sort_keys=True)[:300]
            cells = [
                bench.get("bench", ""),
                result,
                bench.get("date", "")[:10],
                _machine_text(bench.get("machine", {})),
                bench.get("command", ""),
            ]
            body.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
            md.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        body.append("</table>")
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


def _html_table(rows: list[Row]) -> str:
    header = ["figure", "measured", "course report", "beside it (same runs)", "date", "machine", "command"]
    lines = ["<table>", "<tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr>"]
    for row in rows:
        measured_class = ' class="notrun"' if row.measured == "not run" else ""
        commands = "<br>".join(f"<code>{html.escape(c)}</code>" for c in row.commands)
        cells = [
            f"<td>{_html_with_code(row.label)}</td>",
            f"<td{measured_class}>{html.escape(row.measured)}</td>",
            f"<td>{html.escape(_course_text(row))}</td>",
            f"<td>{html.escape(_beside_text(row))}</td>",
            f"<td>{html.escape(row.date)}</td>",
            f"<td>{html.escape(row.machine if row.sources else '')}</td>",
            f"<td>{commands}</td>",
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


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
        help="rewrite README's results block from the committed records only",
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
        changed = rewrite_readme(args.readme, rows)
        print(f"{args.readme}: results block {'rewritten' if changed else 'already up to date'}")
        return
    roots = [args.root / "outputs", args.root / "multirun"]
    rows = build_rows(collect_runs(roots, args.results), spec, course, bench_records)
    comparisons = sorted((args.root / "multirun").glob("**/comparison.png"))
    benches = load_bench_results(args.root / "bench" / "results")
    shown = {(b.get("command"), b.get("date")) for b in benches}
    benches += [b for b in bench_records.values() if (b["command"], b["date"]) not in shown]
    page = write_report(rows, benches, comparisons, args.out)
    filled = sum(row.measured != "not run" for row in rows)
    print(f"report: {page} ({filled} of {len(rows)} rows measured)")


if __name__ == "__main__":
    main()
