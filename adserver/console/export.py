"""CSV of a report: one line per row as shown, in the order shown, numbers in plain notation.

Cells that start like a spreadsheet formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) get
a leading apostrophe, so a product id from a feed cannot run as a formula when the file is opened.
"""

from __future__ import annotations

import csv
import io

from adserver.console.report import COLUMNS, CONSENT_COLUMNS, INVALID_COLUMNS, Report, Row

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA) else value


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".") if value == value else ""
    return str(value)


def to_csv(report: Report, rows: list[Row]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    columns = COLUMNS + INVALID_COLUMNS + CONSENT_COLUMNS  # invalid traffic and consent last: empty for products
    writer.writerow([report.request.group_by, *(name for name, _ in columns)])
    for row in rows:
        writer.writerow([_text(row.key), *(_cell(row.value(name)) for name, _ in columns)])
    return out.getvalue()


def filename(report: Report) -> str:
    r = report.request
    return f"report-{r.advertiser}-{r.start}-{r.end}-{r.group_by}.csv"
