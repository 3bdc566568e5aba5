"""The report: tables from result files only, 'not run' where none, mean ± sd over seeds, the README block."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import REPO_ROOT

from hw2lab.tools import report
from hw2lab.tools.declared import load_declarations

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
    smoke = tmp_path / "multirun" / "vae" / "2026-12-02" / "09-00-00-000000"  # a smoke sweep: never a result
    write_run(smoke / "0", "vae", ["task=vae", "trainer=debug"], {"test/neg_elbo": 900.0})
    (smoke / "comparison.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"1" * 100)
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


MAIN_JOB_ROW = "test −ELBO (nats/image) by KL weight λ = 0 / 1 / 10 / 100, TibetanMNIST, the task's defaults (README's main command)"


def declare(tmp_path: Path, task: str, text: str) -> dict:
    """Declarations of one task from YAML text, as conf/results/<task>.yaml would hold them."""
    folder = tmp_path / "declared"
    folder.mkdir(exist_ok=True)
    (folder / f"{task}.yaml").write_text(text)
    return load_declarations(folder)


def row_of(rows, label):
    (row,) = [row for row in rows if row.label == label]
    return row


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
    # the sweep's comparison is shown, the smoke sweep's not; captions name no absolute path
    shown = [(out / src).read_bytes() for src in page.images]
    assert (
        results_tree / "multirun" / "vae" / "2026-12-01" / "10-00-00-000000" / "comparison.png"
    ).read_bytes() in shown
    assert not any(b"1" * 100 in image for image in shown)
    assert str(results_tree) not in (out / "index.html").read_text()
    data_rows = [row for row in page.rows if row and row[0] not in ("figure", "bench")]
    by_label = {row[0]: row for row in data_rows}
    vae = by_label[MAIN_JOB_ROW]
    # the two seeds of λ = 1 (the sweep's settings are the same in both budgets); the smoke and the failed run
    # are not results
    assert vae[1] == "0: not run · 1: 122 ± 2.8 (n = 2) · 10: not run · 100: not run"
    assert vae[2] == "same settings as cpu"
    assert "python run.py task=vae seed=1" in vae[7] and "Test CPU (2 cores), no GPU" == vae[6]
    assert not any("2.04" in cell for row in data_rows for cell in row)  # `task=charlm` is no declared row
    for row in data_rows:  # every measured row names its command; no other row shows a number
        if len(row) == 8:
            assert (
                row[1] in ("not run", "not in this budget")
                and row[2] in ("not run", "not in this budget", "same settings as cpu")
            ) == (row[7] == ""), row
    assert "not run" in (out / "README.md").read_text()
    assert any(row[:1] == ["vae"] and "0.9" in row[1] for row in page.rows)  # the bench result


def test_a_record_keeps_the_runs_and_the_report_reads_it_without_the_outputs(results_tree, tmp_path):
    sweep = results_tree / "multirun" / "vae" / "2026-12-01" / "10-00-00-000000"
    records = tmp_path / "records"
    path = report.record(sweep, records)
    assert path.parent.name == "vae" and len(json.loads(path.read_text())["runs"]) == 2
    spec, course = report.load_spec()
    rows = report.build_rows(report.collect_runs([], records), spec, course)
    row = next(r for r in rows if r.label == MAIN_JOB_ROW)
    # a record of the sweep's folder is no declared run's record: its runs fill no row
    assert row.measured == "not run"
    path = report.record(sweep, records, name="vae_main")  # the main run's declared record
    rows = report.build_rows(report.collect_runs([], records), spec, course)
    row = next(r for r in rows if r.label == MAIN_JOB_ROW)
    assert row.measured.startswith("0: not run · 1: 122 ± 2.8 (n = 2)") and row.date == "2026-12-01"


def test_the_readme_block_is_rewritten_from_the_records(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# title\n\n{report.README_BEGIN}\nhand-written table\n{report.README_END}\n\nrest\n")
    spec, course = report.load_spec()
    rows = report.build_rows([], spec, course)
    assert report.rewrite_readme(readme, rows)
    text = readme.read_text()
    assert text.startswith("# title") and text.rstrip().endswith("rest") and "hand-written" not in text
    figures = [cell for row in rows if row.readme for cell in report.budget_cells(row)]
    assert text.count("not run") == figures.count("not run") > 0
    assert not report.rewrite_readme(readme, rows)  # idempotent


def test_every_course_number_a_row_names_exists():
    spec, course = report.load_spec()
    named = {row["course"] for task in spec.values() for row in task.rows if row.get("course")}
    assert named <= set(course), named - set(course)
    assert all(isinstance(item["value"], int | float) and item["report"] for item in course.values())


def test_the_readme_results_block_matches_the_committed_records():
    readme = (REPO_ROOT / "README.md").read_text()
    assert report.README_BEGIN in readme and report.README_END in readme
    spec, course = report.load_spec()
    records = REPO_ROOT / "results"
    rows = report.build_rows(
        report.collect_runs([], records), spec, course, report.load_bench_records(records)
    )
    block = report.readme_block(rows, report.load_reproductions(records))
    assert block in readme, "run `python -m hw2lab.report --readme`"


def committed_rows() -> list:
    spec, course = report.load_spec()
    records = REPO_ROOT / "results"
    return report.build_rows(
        report.collect_runs([], records), spec, course, report.load_bench_records(records)
    )


def test_a_row_shows_a_figure_exactly_where_its_runs_record_exists():
    """A typo in `where`, `at` or `metric` would say "not run" beside a record that holds the figure; a
    figure without its run's record would come from elsewhere."""
    for row in committed_rows():
        for budget in ("cpu", "full"):
            if all(spec.tokens(budget) is None for spec in row.specs):
                assert row.figures[budget].measured == "not in this budget", row.label
                continue
            keys = {key for spec in row.specs for key in spec.record_keys(budget)}
            recorded = any((REPO_ROOT / "results" / f"{key}.json").is_file() for key in keys)
            assert (row.figures[budget].measured != "not run") == recorded, (row.label, budget)
            assert {source.record for source in row.figures[budget].sources} <= keys, row.label


def test_every_readme_row_has_a_run_with_a_command():
    spec, _ = report.load_spec()
    for task in spec.values():
        for entry in task.rows:
            if entry.get("readme", True):
                for run in task.runs_of(entry):
                    assert run.command.startswith("python ") and run.tokens("full"), entry["label"]


def test_runs_that_compose_to_the_same_command_agree():
    """Two declared runs of a task with the same command would give one result two budgets or records; two
    runs with one record would overwrite each other."""
    spec, _ = report.load_spec()
    for task in spec.values():
        by_command, by_record = {}, {}
        for run in task.runs.values():
            for budget in ("smoke", "cpu", "full"):
                command = run.command_for(budget)
                if command:
                    other = by_command.setdefault((budget, command), run)
                    assert (other.budgets, other.record) == (run.budgets, run.record), (other.id, run.id)
            other = by_record.setdefault(run.record, run)
            assert other is run, (other.id, run.id, run.record)


def test_every_committed_record_belongs_to_a_declared_run():
    spec, _ = report.load_spec()
    declared = {
        key
        for task in spec.values()
        for run in task.runs.values()
        for key in (run.record_key("full"), run.record_key("cpu"))
    }
    records = REPO_ROOT / "results"
    committed = {path.relative_to(records).with_suffix("").as_posix() for path in records.glob("**/*.json")}
    wholes = {f"reproduction/{budget}" for budget in ("cpu", "full")}  # a whole budget's record (README)
    assert committed - wholes <= declared, committed - wholes - declared


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


def write_covid_bench(path: Path) -> Path:
    """A bench result as `write_bench_result` writes it: a summary per setting and its runs with bulk."""

    def run(seed: int, acc: float) -> dict:
        return {"seed": seed, "origin": 0, "test/acc": acc, "test/acc_reversal": 0.6, "train/acc": 0.9}

    result = {
        "seeds": [42, 43],
        "settings": [
            {
                "interval": 7,
                "cell": "gru",
                "acc": 0.55,
                "acc_reversal": 0.6,
                "acc_hgb": 0.52,
                "runs": [run(42, 0.54), run(43, 0.56)],
            },
            {
                "interval": 7,
                "cell": "lstm",
                "acc": 0.5,
                "acc_reversal": 0.6,
                "acc_hgb": 0.52,
                "runs": [run(42, 0.5)],
            },
        ],
    }
    payload = {
        "bench": "covid",
        "command": f"python bench/covid.py --intervals 7 --out {path}",
        "date": "2026-12-01T05:55:04",
        "machine": MACHINE,
        "result": result,
    }
    path.write_text(json.dumps(payload))
    return path


BENCH_DECLARATION = """
runs:
  course_L7:
    command: python bench/covid.py --intervals 7
    record: results/covid/course-L7.json
  jhu_L7:
    command: python bench/covid.py --intervals 7 data=covid_jhu
    record: results/covid/jhu-L7.json
rows:
  - label: test accuracy, GRU
    run: course_L7
    at: [settings, {interval: 7, cell: gru}]
    metric: [runs, "*", test/acc]
    best_of: [acc_hgb, acc_reversal]
  - label: test accuracy and AUROC by cell
    run: course_L7
    at: [settings, {interval: 7}]
    metrics: {accuracy: [runs, "*", test/acc], AUROC: [runs, "*", test/auroc]}
    over: {cell: [gru, lstm]}
  - label: missing record
    run: jhu_L7
    at: [settings, {interval: 7, cell: gru}]
    metric: [runs, "*", test/acc]
  - label: elsewhere in the record
    run: course_L7
    at: [settings, {interval: 3, cell: gru}]
    metric: [runs, "*", test/acc]
"""


def test_a_bench_record_keeps_the_summary_and_each_runs_scores_without_the_machines_paths(tmp_path):
    source = write_covid_bench(tmp_path / "course-L7.json")
    records = tmp_path / "results"
    target = report.record(source, records)
    assert target == records / "covid" / "course-L7.json"
    kept = json.loads(target.read_text())
    assert (
        kept["command"] == "python bench/covid.py --intervals 7" and str(tmp_path) not in target.read_text()
    )
    assert kept["date"] == "2026-12-01T05:55:04" and kept["machine"] == MACHINE
    gru = kept["result"]["settings"][0]
    assert gru["acc_reversal"] == 0.6 and gru["acc"] == 0.55  # the summary stays whole
    assert gru["runs"][1] == {"seed": 43, "origin": 0, "test/acc": 0.56}  # per run: no baselines, no curves
    assert set(report.load_bench_records(records)) == {"covid/course-L7"}
    assert report.collect_runs([], records) == []  # a bench record is not a run


def test_a_row_is_filled_from_a_bench_record_in_both_budgets(tmp_path):
    records = tmp_path / "results"
    report.record(write_covid_bench(tmp_path / "course-L7.json"), records)
    benches = report.load_bench_records(records)
    rows = report.build_rows([], declare(tmp_path, "covid", BENCH_DECLARATION), {}, benches)
    row = row_of(rows, "test accuracy, GRU")
    # the bench's cpu and full budgets run the same command, so its one record fills both
    assert row.figures["cpu"].measured == row.figures["full"].measured == "0.55 ± 0.014 (n = 2)"
    assert row.beside == {"best baseline": "reversal 0.6"}
    assert row.commands == ["python bench/covid.py --intervals 7"] and row.date == "2026-12-01"
    assert row.machine == "Test CPU (2 cores), no GPU"
    # one figure per cell, both metrics: the GRU's two seeds, the LSTM's one
    by_cell = row_of(rows, "test accuracy and AUROC by cell")
    assert by_cell.measured == "gru: 0.55 ± 0.014 (n = 2) / not run · lstm: 0.5 / not run"


def test_a_row_without_its_result_says_not_run_and_names_no_command(tmp_path):
    records = tmp_path / "results"
    report.record(write_covid_bench(tmp_path / "course-L7.json"), records)
    benches = report.load_bench_records(records)
    declared = declare(tmp_path, "covid", BENCH_DECLARATION)
    declared.update(
        declare(
            tmp_path,
            "charlm",
            "runs: {cells: {command: python run.py -m task=charlm cell=rnn,gru, record: results/charlm/cells.json}}\n"
            "rows: [{label: val bpc by cell, run: cells, metric: val/bpc, where: {task: charlm},"
            " over: {cell: [rnn, gru]}}]\n",
        )
    )
    rows = report.build_rows([], declared, {}, benches)
    rows = [
        row for row in rows if row.label in ("missing record", "elsewhere in the record", "val bpc by cell")
    ]
    assert len(rows) == 3
    for row in rows:
        assert row.measured == "not run" and row.commands == [] and row.beside == {} and row.date == ""
    lines = report.markdown_table(rows, with_machine=False)[2:]
    assert all(" | not run | same settings as cpu |  |  |  | `python " in line for line in lines), lines


def test_a_record_keeps_the_runs_notes_and_a_row_shows_one_by_its_path(tmp_path):
    """What the data noted (e.g. how many test articles have a duplicate in training) is a record's too."""
    sweep = tmp_path / "sweep"
    for job, leaked in ((0, 30), (1, 36)):
        write_run(sweep / str(job), "news", ["task=news", f"data.seed={job + 1}"], {"test/acc": 0.9})
        metrics = json.loads((sweep / str(job) / "metrics.json").read_text())
        metrics["notes"] = {"test_with_duplicate_in_train": leaked, "split_sizes": {"test": 334}}
        (sweep / str(job) / "metrics.json").write_text(json.dumps(metrics))
    records = tmp_path / "results"
    path = report.record(sweep, records, name="splits")
    assert [run["notes"]["test_with_duplicate_in_train"] for run in json.loads(path.read_text())["runs"]] == [
        30,
        36,
    ]
    declared = declare(
        tmp_path,
        "news",
        "runs: {splits: {command: python run.py -m task=news data.seed=1,2, record: results/news/splits.json}}\n"
        "rows: [{label: leaked, run: splits, metric: notes.test_with_duplicate_in_train,"
        " where: {task: news, data.seed: [1, 2]}},"
        " {label: first, run: splits, metric: notes.test_with_duplicate_in_train, where: {task: news, data.seed: 1}},"
        " {label: absent, run: splits, metric: notes.no_such_note, where: {task: news, data.seed: [1, 2]}}]\n",
    )
    rows = report.build_rows(report.collect_runs([], records), declared, {})
    assert row_of(rows, "leaked").measured == "33 ± 4.2 (n = 2)"  # a list in `where`: any of its values
    assert row_of(rows, "first").measured == "30"
    assert row_of(rows, "absent").measured == "not run"


def test_a_budget_that_changes_the_settings_has_its_own_figure(tmp_path):
    """cpu runs fewer epochs than the course: the full record fills the full figure only, and a cpu record
    of the changed settings the cpu one; a run left out of a budget says so."""
    declared = declare(
        tmp_path,
        "vae",
        "runs:\n"
        "  anime: {command: python run.py experiment=vae_conv_anime, record: results/vae/anime.json,"
        " cpu: [trainer.max_epochs=20]}\n"
        "  tried: {command: python run.py experiment=vae_conv_anime data.batch_size=8,"
        " record: results/vae/tried.json, cpu: skip}\n"
        "rows:\n"
        "  - {label: anime, run: anime, metric: test/neg_elbo, where: {experiment: vae_conv_anime}}\n"
        "  - {label: tried, run: tried, metric: test/neg_elbo, where: {experiment: vae_conv_anime,"
        " data.batch_size: 8}}\n",
    )

    def run(overrides: list[str], value: float, record: str) -> report.Run:
        command = " ".join(["python run.py", *overrides])
        return report.Run(
            "vae", command, "2026-12-01", MACHINE, overrides, {"test/neg_elbo": value}, record=record
        )

    full = run(["experiment=vae_conv_anime"], 6777.0, "vae/anime")
    rows = report.build_rows([full], declared, {})
    anime, tried = row_of(rows, "anime"), row_of(rows, "tried")
    assert (anime.figures["cpu"].measured, anime.figures["full"].measured) == ("not run", "6777")
    assert tried.figures["cpu"].measured == "not in this budget"
    cpu = run(["experiment=vae_conv_anime", "trainer.max_epochs=20"], 6790.0, "vae/cpu/anime")
    anime = row_of(report.build_rows([full, cpu], declared, {}), "anime")
    assert (anime.figures["cpu"].measured, anime.figures["full"].measured) == ("6790", "6777")
    assert anime.declared_commands == ["python run.py experiment=vae_conv_anime"]


def test_readme_commands_leave_out_logging_and_merge_a_sweeps_jobs():
    jobs = [
        f"python run.py kl_weight={w} experiment=vae_kl_tibetan num_threads=1 logger=none" for w in (0, 1, 10)
    ]
    assert report.compact_commands(jobs) == ["python run.py -m kl_weight=0,1,10 experiment=vae_kl_tibetan"]
    other = ["python run.py experiment=a seed=1", "python run.py experiment=b seed=2"]  # two things differ
    assert report.compact_commands(other) == other


def test_commands_show_overrides_as_typed_but_keep_an_escaped_comma():
    assert report.as_typed(r"+trainer.max_time=00\:00\:15\:00") == "+trainer.max_time=00:00:15:00"
    assert report.as_typed(r"tags=a\,b") == r"tags=a\,b"


def test_a_record_leaves_out_where_the_run_wrote_its_files(tmp_path):
    run = tmp_path / "map"
    write_run(run, "covid", ["task=covid", f"paths.output_dir={run}"], {"test/acc": 0.5})
    target = report.record(run, tmp_path / "results")
    assert target.name == "map.json" and str(tmp_path) not in target.read_text()
    (kept,) = json.loads(target.read_text())["runs"]
    assert kept["command"] == "python run.py task=covid" and kept["overrides"] == ["task=covid"]


def test_the_best_epoch_is_the_best_validation_epoch_counted_from_one(tmp_path):
    from hw2lab.pipeline import best_epoch
    from hw2lab.run_files import write_history

    history = tmp_path / "history.csv"
    write_history(
        [{"epoch": 0, "val/loss": 3.0}, {"epoch": 1, "val/loss": 2.0}, {"epoch": 2, "val/loss": 2.5}], history
    )
    assert best_epoch(history, "val/loss", "min") == 2
    assert best_epoch(history, "val/loss", "max") == 1
    assert (
        best_epoch(history, "val/acc", "max") is None
        and best_epoch(tmp_path / "none.csv", "val/loss", "min") is None
    )


def test_the_commit_is_known_in_a_git_checkout_and_null_outside(tmp_path, monkeypatch):
    from hw2lab import provenance

    version = provenance.code_version()
    if (REPO_ROOT / ".git").exists():
        assert len(version["git_commit"]) == 40 and isinstance(version["git_dirty"], bool)
    monkeypatch.setattr(provenance, "REPO_ROOT", tmp_path)
    assert provenance.code_version() == {"git_commit": None, "git_dirty": None}


def test_a_record_keeps_each_runs_provenance_and_a_small_key_figure(tmp_path):
    import numpy as np
    from PIL import Image

    sweep = tmp_path / "multirun" / "vae" / "2026-12-03" / "10-00-00-000000"
    write_run(sweep / "0", "vae", ["task=vae", "kl_weight=1"], {"test/neg_elbo": 120.0})
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())
    provenance = {"duration_s": 95.5, "fit_s": 80.25, "epochs": 15, "best_epoch": 12, "torch_threads": 1}
    provenance.update({"git_commit": "a" * 40, "git_dirty": False})
    (sweep / "0" / "metrics.json").write_text(json.dumps({**metrics, **provenance}))
    noise = np.random.default_rng(0).integers(0, 256, (900, 1200, 3), dtype=np.uint8)
    Image.fromarray(noise).save(sweep / "comparison.png")
    assert (sweep / "comparison.png").stat().st_size > 300_000
    records = tmp_path / "results"
    target = report.record(sweep, records, name="vae_main")
    (kept,) = json.loads(target.read_text())["runs"]
    assert {key: kept[key] for key in provenance} == provenance
    figure = target.with_suffix(".png")
    assert 0 < figure.stat().st_size <= 300_000 and Image.open(figure).format == "PNG"
    (run,) = report.collect_runs([], records)
    assert run.provenance == provenance and run.figures == [figure]
    out = tmp_path / "report"
    report.main(["--root", str(tmp_path / "nothing"), "--results", str(records), "--out", str(out)])
    page = Page()
    page.feed((out / "index.html").read_text())
    assert [(out / src).read_bytes() for src in page.images] == [figure.read_bytes()]  # beside its numbers


def test_every_task_doc_results_block_matches_the_committed_records():
    rows = committed_rows()
    for task in dict.fromkeys(row.task for row in rows):
        text = (REPO_ROOT / "docs" / f"{task}.md").read_text()
        block = report.doc_block([row for row in rows if row.task == task])
        assert block in text, f"docs/{task}.md: run `python -m hw2lab.report --readme`"


def test_a_doc_block_shows_both_budgets_the_cpu_setting_beside_the_courses_and_the_command(tmp_path):
    declared = declare(
        tmp_path,
        "vae",
        "runs:\n"
        "  anime: {command: python run.py experiment=vae_conv_anime, record: results/vae/anime.json,"
        " cpu: [trainer.max_epochs=20], why: the best epoch is early}\n"
        "rows:\n"
        "  - {label: anime, run: anime, metric: test/neg_elbo, where: {experiment: vae_conv_anime}}\n",
    )
    full = report.Run(
        "vae",
        "python run.py experiment=vae_conv_anime",
        "2026-12-01",
        MACHINE,
        ["experiment=vae_conv_anime"],
        {"test/neg_elbo": 6777.0},
        record="vae/anime",
    )
    rows = report.build_rows([full], declared, {})
    doc = tmp_path / "vae.md"
    doc.write_text(f"# vae\n\n{report.DOC_BEGIN}\nold table\n{report.README_END}\n\nprose\n")
    assert report.rewrite_docs(tmp_path, rows) == [doc]
    text = doc.read_text()
    assert "old table" not in text and text.rstrip().endswith("prose")
    (line,) = [line for line in text.splitlines() if line.startswith("| anime |")]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[1:3] == ["not run", "6777"]
    # the course's value is read from the composed preset, not from the declaration
    assert cells[4:6] == ["`trainer.max_epochs=20`: the best epoch is early", "`trainer.max_epochs=100`"]
    assert cells[7] == "`python run.py experiment=vae_conv_anime`"
    assert report.rewrite_docs(tmp_path, rows) == []  # idempotent
