"""Every report table as a download: `?format=csv` or `?format=xlsx` on the report's own
URL, with the report's filters (they are in the URL too). One Table type that a report
view builds once and either renders or hands to `download`.

CSV text cells go through ispops.lib.csvexport (formula injection); XLSX is written by
openpyxl, with numbers as numbers and text cells never read as formulas (openpyxl
writes a str starting with "=" as a formula unless told it is a string).
"""

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.http import HttpResponse
from django.utils.text import slugify
from openpyxl import Workbook
from openpyxl.cell.cell import TYPE_STRING

from ispops.lib import csvexport

FORMATS = ("csv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass
class Table:
    """A report table: `columns` are (key, heading); each row maps keys to values
    (str, int, Decimal, date or None)."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[dict] = field(default_factory=list)

    def values(self, row: dict) -> list:
        return [row.get(key) for key, _ in self.columns]


def wanted_format(request) -> str | None:
    """'csv' or 'xlsx' when the URL asks for a download, else None (render the page)."""
    fmt = request.GET.get("format", "")
    return fmt if fmt in FORMATS else None


def download(table: Table, fmt: str, *, filename: str | None = None) -> HttpResponse:
    """The table as a CSV or XLSX attachment."""
    name = slugify(filename or table.title) or "report"
    if fmt == "csv":
        response = HttpResponse(_csv(table), content_type="text/csv; charset=utf-8")
    elif fmt == "xlsx":
        response = HttpResponse(_xlsx(table), content_type=XLSX_TYPE)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    response["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    response["Cache-Control"] = "private, no-store"
    return response


def _csv(table: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(csvexport.row(label for _, label in table.columns))
    for row in table.rows:
        writer.writerow(
            [
                csvexport.cell(v) if isinstance(v, str) else ("" if v is None else v)
                for v in table.values(row)
            ]
        )
    return out.getvalue()


def _xlsx(table: Table) -> bytes:
    book = Workbook(write_only=False)
    sheet = book.active
    sheet.title = (table.title or "Report")[:31].replace("/", "-")
    sheet.append([label for _, label in table.columns])
    for row in table.rows:
        sheet.append([_xlsx_value(v) for v in table.values(row)])
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = TYPE_STRING  # never a formula
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _xlsx_value(value):
    if isinstance(value, Decimal):
        return float(value)  # money to the cent: exact well past any ISP's figures
    if isinstance(value, (date, datetime, int, float)) or value is None:
        return value
    return str(value)
