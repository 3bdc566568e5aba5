"""Committed records (`--record`): a run's, a sweep's or a bench's result, small enough for results/."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

from PIL import Image

from hw2lab.run_files import write_json
from hw2lab.tools.declared import REPO_ROOT, load_declarations
from hw2lab.tools.report.runs import record_key, run_from_metrics

# Where a run or bench wrote its files on that machine: true there, noise in a record.
OUTPUT_LOCATION = re.compile(r"^(paths\.output_dir|hydra\.run\.dir|hydra\.sweep\.dir|--out)=")


def portable(tokens: list[str]) -> list[str]:
    """The tokens as typed in any clone: without the output location (`paths.output_dir=`, `hydra.*.dir=`,
    a bench's `--out F`), and a path inside this clone (a bench script run by reproduce) relative to it."""
    kept, skip = [], False
    for token in tokens:
        if skip:
            skip = False
        elif token == "--out":
            skip = True
        elif not OUTPUT_LOCATION.match(token):
            inside = token.startswith("/") and Path(token).is_relative_to(REPO_ROOT)
            kept.append(str(Path(token).relative_to(REPO_ROOT)) if inside else token)
    return kept


def record(source: Path, records: Path, name: str | None = None) -> Path:
    """Commit-sized record of a run or sweep folder, or of a bench result file (see `record_bench`).

    A run's or sweep's record holds per finished run its command, date, machine, overrides,
    hyper-parameters, metrics and provenance (wall times, epochs, threads, commit; no checkpoints), in
    `results/<task>/<name>.json` (`name`: the folder's name by default; it may hold a folder, e.g.
    `cpu/kl_tibetan`), and its key figure, small, beside it as `<name>.png` (see `key_figure`)."""
    if source.name == "metrics.json":
        source = source.parent
    if source.is_file():
        if "sittings" in json.loads(source.read_text()):
            return record_reproduction(source, records)
        return record_bench(source, records, name)
    paths = (
        [source / "metrics.json"]
        if (source / "metrics.json").is_file()
        else sorted(source.glob("*/metrics.json"))
    )
    runs = [run for run in map(run_from_metrics, paths) if run is not None]
    if not runs:
        raise SystemExit(f"error: no finished run (metrics.json with status ok) in {source}")
    target = records / runs[0].task / f"{name or _record_name(source)}.json"
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
                **({"notes": r.notes} if r.notes else {}),
                **r.provenance,
            }
            for r in runs
        ],
    }
    figure = key_figure(source, runs[0].task)
    if figure is not None:
        try:
            small_png(figure, target.with_suffix(".png"))
        except (OSError, ValueError) as error:  # an unreadable figure must not cost the numbers
            print(f"warning: {figure} not kept beside the record: {error}")
    return write_json(target, payload, indent=1, sort_keys=True)


def record_reproduction(path: Path, records: Path) -> Path:
    """Record of a whole budget's reproduction (`reproduce`'s reproduction.json): its command, when and where
    it ran, its wall time (the sum of its sittings) and each job's, in `results/reproduction/<budget>.json`."""
    data = json.loads(path.read_text())
    keys = ("budget", "command", "started", "elapsed_s", "sittings", "summed_job_s", "slots", "threads")
    payload = {key: data.get(key) for key in (*keys, "machine", "git_commit", "git_dirty", "tasks", "jobs")}
    payload["command"] = " ".join(portable(str(payload["command"]).split(" ")))
    payload["date"] = str(data["started"])[:10]
    return write_json(records / "reproduction" / f"{data['budget']}.json", payload, indent=1, sort_keys=True)


def key_figure(folder: Path, task: str) -> Path | None:
    """A sweep's comparison.png, or a run's main figure (its task's declared `figure`, else its learning
    curves); None where the folder has neither."""
    declared = load_declarations().get(task)
    names = [declared.figure] if declared else []
    candidates = [folder / "comparison.png"]
    candidates += [folder / "figures" / name for name in [*names, "learning_curves.png"]]
    return next((path for path in candidates if path.is_file()), None)


FIGURE_BYTES = 300_000


def small_png(source: Path, target: Path, limit: int = FIGURE_BYTES) -> Path:
    """`source` as a PNG of at most `limit` bytes: as it is where it fits, else with 256 colours, then
    smaller by steps of 0.8 until it fits."""
    image = Image.open(source)
    image.load()
    scale = 1.0
    while True:
        sized = (
            image
            if scale == 1.0
            else image.resize(
                (max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.LANCZOS
            )
        )
        for candidate in (sized, sized.convert("RGB").quantize(256)):
            buffer = io.BytesIO()
            candidate.save(buffer, "PNG", optimize=True)
            if buffer.tell() <= limit or min(candidate.size) <= 16:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(buffer.getvalue())
                return target
        scale *= 0.8


def _record_name(folder: Path) -> str:
    """The folder's name; a Hydra time folder (`10-00-00-000000`) with its date folder in front."""
    parts = folder.resolve().parts
    return f"{parts[-2]}-{parts[-1]}" if re.match(r"^\d\d-\d\d-\d\d", parts[-1]) else parts[-1]


# A run of a bench keeps what rows cite: its seed/fold/origin and the model's own test scores.
BENCH_RUN_KEYS = re.compile(r"^(seed|origin|fold|test/[^_]+)$")


def record_bench(path: Path, records: Path, name: str | None = None, folder: str | None = None) -> Path:
    """Record of a bench result (`write_bench_result`'s JSON) in `results/<folder>/<name>.json` (by default
    the bench's name and the file's stem; reproduce passes the declaring task, whose folder the record belongs
    in whatever the bench is called): its
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
    target = records / (folder or data["bench"]) / f"{name or path.stem}.json"
    return write_json(target, payload, indent=1, sort_keys=True)


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
    """The committed bench records by their path in results/ without `.json` (`covid/course-L7`,
    `covid/cpu/course-L7`), as a run's declaration names its record."""
    found = {}
    for path in sorted(records.glob("**/*.json")) if records.is_dir() else []:
        data = json.loads(path.read_text())
        if "bench" in data:
            key = record_key(path, records)
            found[key] = {**data, "source": str(path), "record": key}
    return found


def load_bench_results(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def load_reproductions(records: Path) -> dict[str, dict[str, Any]]:
    """The committed records of whole reproductions, by budget (results/reproduction/<budget>.json)."""
    folder = records / "reproduction"
    return (
        {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))} if folder.is_dir() else {}
    )
