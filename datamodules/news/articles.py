"""Reading news articles: the BBC folder, a labelled news CSV, the unlabelled file to predict and Kaggle's
sample solution.

Two on-disk formats for labelled articles: the BBC folder (one folder per category, `NNN.txt` with the
headline on line 1, then the body) and a CSV with a header (Kaggle's `ArticleId,Text,Category`, the
course's `Id,Category,Title`, or `category,text`).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from hw2lab.errors import check

log = logging.getLogger("hw2lab")

TEXT_FIELDS = ("title", "body", "full")
# Column names (compared lower-cased) that name the rows of a CSV.
ID_COLUMNS = ("id", "articleid")


@dataclass
class Article:
    id: str
    category: str
    title: str
    body: str

    def text(self, field: str) -> str:
        if field == "title":
            return self.title
        if field == "body":
            return self.body
        return f"{self.title}\n\n{self.body}".strip()


def read_text_file(path: Path) -> str:
    """UTF-8, or Latin-1 for the odd file that is not (BBC sport/199.txt has a lone 0xA3 for '£')."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        log.info("%s is not valid UTF-8; read as Latin-1", path)
        return raw.decode("latin-1")


def read_bbc_folder(root: Path) -> list[Article]:
    """`root/<category>/<name>.txt`: line 1 the headline, the rest (after blank lines) the body."""
    categories = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    check(bool(categories), f"no category folders in {root} (expected {root}/<category>/<NNN>.txt)")
    articles = []
    for folder in categories:
        files = sorted(folder.glob("*.txt"))
        check(bool(files), f"category folder {folder} has no .txt articles")
        for path in files:
            title, _, body = read_text_file(path).strip().partition("\n")
            articles.append(Article(f"{folder.name}/{path.stem}", folder.name, title.strip(), body.strip()))
    return articles


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file's first row, as written."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        return next(csv.reader(handle), [])


def id_column(header: list[str]) -> str | None:
    """The column of `header` that names the rows (`id` or `articleid`, any case), as written."""
    columns = {name.strip().lower(): name for name in header}
    return next((columns[c] for c in ID_COLUMNS if c in columns), None)


def read_news_csv(path: Path, labelled: bool = True) -> list[Article]:
    """A news CSV with a header: `title` and/or `text` (or `body`) columns, and a category column when
    `labelled`; an id column (`id`, `articleid`) if present, else the row number. Column names are
    case-insensitive. Unlabelled (a Kaggle test file to predict, `data.predict_file`): categories are empty,
    ids are kept exactly as written, and a row may have an empty text."""
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = {name.strip().lower(): name for name in reader.fieldnames or []}
        check(
            not labelled or "category" in columns,
            f"{path}: no 'category' column (columns: {reader.fieldnames}); an unlabelled file to predict "
            "goes in data.predict_file",
        )
        text_columns = [c for c in ("title", "text", "body") if c in columns]
        check(
            bool(text_columns), f"{path}: no 'title', 'text' or 'body' column (columns: {reader.fieldnames})"
        )
        ids = id_column(list(reader.fieldnames or []))
        articles = []
        for number, row in enumerate(reader, start=1):
            title = (row.get(columns.get("title", ""), "") or "").strip()
            body = (row.get(columns.get("text", columns.get("body", "")), "") or "").strip()
            if not labelled:
                row_id = (row.get(ids) or "") if ids else str(number)
                articles.append(Article(row_id, "", title, body))
                continue
            category = (row.get(columns["category"]) or "").strip()
            check(bool(category), f"{path}: row {number} has an empty category")
            row_id = (row.get(ids) or "").strip() if ids else str(number)
            articles.append(Article(row_id or str(number), category, title, body))
    check(bool(articles), f"{path} has no rows")
    return articles


def read_articles(path: Path) -> list[Article]:
    if path.is_dir():
        return read_bbc_folder(path)
    check(path.suffix.lower() == ".csv", f"{path}: expected a BBC folder or a .csv file")
    return read_news_csv(path)


def submission_header(predict_file: Path, sample_submission: Path | None, ids: list[str]) -> list[str]:
    """The header of submission.csv: the sample solution's (`data.sample_submission`, e.g. Kaggle's
    `ArticleId,Category`) when one is given, else the id column's name in the file to predict (`Id` when
    it has none) and `Category`. A sample solution whose ids are not those of the file to predict is
    logged (it may belong to another file)."""
    if sample_submission is None:
        return [id_column(csv_header(predict_file)) or "Id", "Category"]
    header = csv_header(sample_submission)
    check(
        len(header) == 2 and all(name.strip() for name in header),
        f"data.sample_submission={sample_submission}: expected a header of two columns (id, category), "
        f"got {header}",
    )
    with open(sample_submission, newline="", encoding="utf-8", errors="replace") as handle:
        sample_ids = {row[0] for row in list(csv.reader(handle))[1:] if row}
    if sample_ids != set(ids):
        log.warning(
            "%s lists %d ids, %d of them not in %s (%d rows); its header is used all the same",
            sample_submission,
            len(sample_ids),
            len(sample_ids - set(ids)),
            predict_file,
            len(ids),
        )
    return header
