"""Reading a COVID case file into one cumulative series per country: the JHU CSSE global time series or
the course's covid_19.csv pivot, told apart by their headers; a cell that is not a whole number, or a
date column out of order, is a one-line error."""

from __future__ import annotations

import csv
import math
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from hw2lab.errors import HW2LabError, check

JHU_HEADER = "Province/State,Country/Region,Lat,Long,1/22/20,..."
COURSE_HEADER = "',Lat,Long,<dates>', then a ',sum,sum,...' row and a 'Country/Region' row"


def read_case_table(path: str | Path) -> pd.DataFrame:
    """Cumulative confirmed cases, one row per country (provinces summed), one column per day (dates).

    Recognises the JHU CSSE global time series and the course's covid_19.csv pivot by their headers;
    anything else is an error that names both expected layouts.
    """
    path = Path(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    check(len(rows) >= 2, f"{path}: empty or header-only file; expected a COVID case table")
    header = [cell.strip() for cell in rows[0]]
    if header[:3] == ["", "Lat", "Long"] and len(rows) > 3 and rows[2][:1] == ["Country/Region"]:
        return _course_table(path, header, rows[3:])
    if "Country/Region" in header:
        return _jhu_table(path, header, rows[1:])
    found = ",".join(header[:5])
    missing = " (it has no Country/Region column)" if any(_parse_date(h) for h in header) else ""
    raise HW2LabError(
        f"{path}: not a recognised COVID case file{missing}: expected the JHU CSSE time series "
        f"(header {JHU_HEADER}) or the course's covid_19.csv pivot ({COURSE_HEADER}); "
        f"the header starts {found!r}"
    )


def _jhu_table(path: Path, header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    country_column = header.index("Country/Region")
    date_columns = [i for i, name in enumerate(header) if i > country_column and _parse_date(name)]
    check(bool(date_columns), f"{path}: no date columns (m/d/yy) after Country/Region")
    dates = _consecutive_dates(path, [header[i] for i in date_columns])
    countries = [row[country_column].strip() if len(row) > country_column else "" for row in rows]
    counts = _counts(path, rows, countries, date_columns, [header[i] for i in date_columns])
    table = pd.DataFrame(counts, index=countries, columns=dates)
    return table.groupby(level=0, sort=True).sum()


def _course_table(path: Path, header: list[str], rows: list[list[str]]) -> pd.DataFrame:
    date_columns = list(range(3, len(header)))
    check(bool(date_columns), f"{path}: the course pivot has no date columns after Lat,Long")
    dates = _consecutive_dates(path, [header[i] for i in date_columns])
    countries = [row[0].strip() if row else "" for row in rows]
    counts = _counts(path, rows, countries, date_columns, [header[i] for i in date_columns])
    table = pd.DataFrame(counts, index=countries, columns=dates)
    return table.groupby(level=0, sort=True).sum()


def _counts(
    path: Path, rows: list[list[str]], countries: list[str], columns: list[int], labels: list[str]
) -> np.ndarray:
    """The count cells as int64, or one error naming the first cell that is not a whole number."""
    out = np.zeros((len(rows), len(columns)), dtype=np.int64)
    for r, row in enumerate(rows):
        check(bool(countries[r]), f"{path}: data row {r + 2} has an empty country name")
        check(
            len(row) >= columns[-1] + 1, f"{path}: row {countries[r]!r} has {len(row)} cells, expected more"
        )
        for c, column in enumerate(columns):
            cell = row[column].strip()
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value) or value != int(value):
                raise HW2LabError(
                    f"{path}: non-numeric count {cell!r} for {countries[r]!r} on {labels[c]}; "
                    "case counts must be whole numbers"
                )
            out[r, c] = int(value)
    return out


def _parse_date(text: str) -> date | None:
    """m/d/yy as JHU writes it, or Excel's mangled 200m/d/yy (e.g. '2002/1/20' is 2/1/20)."""
    match = re.fullmatch(r"(\d{1,4})/(\d{1,2})/(\d{2})", text.strip())
    if not match:
        return None
    month, day, year = (int(g) for g in match.groups())
    if 2001 <= month <= 2012:
        month -= 2000
    try:
        return date(2000 + year, month, day)
    except ValueError:
        return None


def _consecutive_dates(path: Path, labels: list[str]) -> pd.DatetimeIndex:
    dates = [_parse_date(label) for label in labels]
    bad = [label for label, parsed in zip(labels, dates) if parsed is None]
    check(not bad, f"{path}: date column {bad[0] if bad else ''!r} is not a date (m/d/yy)")
    for previous, current in zip(dates, dates[1:]):
        check(
            current == previous + timedelta(days=1),
            f"{path}: date columns must be consecutive days; {current} follows {previous}",
        )
    return pd.DatetimeIndex(dates)
