"""The report: tables from result files only, 'not run' where none, mean ± sd over seeds, the README block."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import REPO_ROOT

from hw2lab import report

MACHINE = {"cpu": "Test CPU", "cpu_count": 2, "gpu": None}


def write_run(folder: Path, task: str, overrides: list[str], metrics: dict, status: str = "ok", figure=True):
    folder.mkdir(parents=True)
    payload = {
        "task": task,
        "status": status,
        "overrides": overrides,
        "metrics": metrics,
        "command": " ".join(["python run.py", *overrides]),
        "date": "2026-12-01T10:00:00",
        "machine": MACHINE,
        "hparams": {"model.kl_weight": 1.0, "model.cell": "lstm"},
    }
    (folder / "metrics.json").write_text(json.dumps(payload))
    if figure:
        (folder / "figures").mkdir()
        (folder / "figures" / "learning_curves.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)


@pytest.fixture
def results_tree(tmp_path):
    sweep = tmp_path / "multirun" / "vae" / "2026-12-01" / "10-00-00-000000"
    write_run(sweep / "0", "vae", ["task=vae", "seed=1"], {"test/neg_elbo": 120.0})
    write_run(sweep / "1", "vae", ["task=vae", "seed=2"], {"test/neg_elbo": 124.0})
    (sweep / "comparison.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"0" * 100)
    write_run(
        tmp_path / "outputs" / "vae" / "smoke", "vae", ["task=vae", "trainer=debug"], {"test/neg_elbo": 1.0}
    )
    write_run(tmp_path / "outputs" / "vae" / "broken", "vae", ["task=vae"], {}, status="failed")
    write_run(tmp_path / "outputs" / "charlm" / "run", "charlm", ["task=charlm"], {"val/bpc": 2.04})
    bench = tmp_path / "bench" / "results"
    bench.mkdir(parents=True)
    (bench / "vae-1.json").write_text(
        json.dumps(
            {
                "bench": "vae",
                "command": "python bench/vae.py",
                "date": "2026-12-01T11:00:00",
                "machine": MACHINE,
                "result": {"ratio": 0.9},
            }
        )
    )
    return tmp_path


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.images, self.rows, self.scripts = [], [], 0
        self._row, self._cell = None, None

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs)["src"])
        elif tag == "script":
            self.scripts += 1
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._row is not None:
            self._row.append((self._cell or "").strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_the_report_shows_measured_rows_with_commands_and_not_run_elsewhere(results_tree):
    out = results_tree / "report"
    report.main(["--root", str(results_tree), "--results", str(results_tree / "results"), "--out", str(out)])
    page = Page()
    page.feed((out / "index.html").read_text())
    assert page.scripts == 0  # readable offline, nothing to load
    assert page.images and all((out / src).is_file() for src in page.images)
    data_rows = [row for row in page.rows if row and row[0] not in ("figure", "bench")]
    by_label = {row[0]: row for row in data_rows}
    vae = by_label["test −ELBO (nats/image), MLP, λ = 1, TibetanMNIST"]
    assert vae[1] == "122 ± 2.8 (n = 2)"  # the two seeds; the smoke and the failed run are not results
    assert "python run.py task=vae seed=1" in vae[6] and "Test CPU (2 cores), no GPU" == vae[5]
    assert by_label["validation bits per character, LSTM"][1] == "2.04"
    assert by_label["validation bits per character, RNN"][1] == "not run"
    for row in data_rows:  # every measured row names its command; no other row shows a number
        if len(row) == 7:
            assert (row[1] == "not run") == (row[6] == ""), row
    assert "not run" in (out / "README.md").read_text()
    assert any(row[:1] == ["vae"] and "0.9" in row[1] for row in page.rows)  # the bench result


def test_a_record_keeps_the_runs_and_the_report_reads_it_without_the_outputs(results_tree, tmp_path):
    sweep = results_tree / "multirun" / "vae" / "2026-12-01" / "10-00-00-000000"
    records = tmp_path / "records"
    path = report.record(sweep, records)
    assert path.parent.name == "vae" and len(json.loads(path.read_text())["runs"]) == 2
    spec, course = report.load_spec()
    rows = report.build_rows(report.collect_runs([], records), spec, course)
    row = next(r for r in rows if r.label.startswith("test −ELBO (nats/image), MLP, λ = 1"))
    assert row.measured == "122 ± 2.8 (n = 2)" and row.date == "2026-12-01"


def test_the_readme_block_is_rewritten_from_the_records(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{report.README_BEGIN}\nold\n{report.README_END}\n\nrest\n")
    spec, course = report.load_spec()
    rows = report.build_rows([], spec, course)
    assert report.rewrite_readme(readme, rows)
    text = readme.read_text()
    assert text.startswith("# title") and text.rstrip().endswith("rest") and "old" not in text
    assert text.count("not run") == len(rows)
    assert not report.rewrite_readme(readme, rows)  # idempotent


def test_every_course_number_a_row_names_exists():
    spec, course = report.load_spec()
    named = {row["course"] for rows in spec.values() for row in rows if row.get("course")}
    assert named <= set(course), named - set(course)
    assert all(isinstance(item["value"], int | float) and item["report"] for item in course.values())


def test_the_readme_results_block_matches_the_committed_records():
    readme = (REPO_ROOT / "README.md").read_text()
    if report.README_BEGIN not in readme:
        pytest.skip("README has no generated results block yet")
    spec, course = report.load_spec()
    rows = report.build_rows(report.collect_runs([], REPO_ROOT / "results"), spec, course)
    assert report.readme_block(rows) in readme


def test_a_row_takes_only_runs_of_exactly_its_configuration():
    run = report.Run(
        "vae",
        "",
        "",
        {},
        ["task=vae", "seed=3", "hydra/launcher=joblib"],
        {"test/neg_elbo": 1.0},
        hparams={"model.kl_weight": 1.0},
    )
    assert run.matches({"task": "vae", "model": None, "model.kl_weight": 1.0})
    tuned = report.Run("vae", "", "", {}, ["task=vae", "model.optimizer.lr=0.003"], {}, hparams=run.hparams)
    assert not tuned.matches({"task": "vae", "model": None, "model.kl_weight": 1.0})
