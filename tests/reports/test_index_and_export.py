"""/reports/ and the one download path every report table takes (?format=csv|xlsx)."""

import io
from datetime import date
from decimal import Decimal

import pytest
from django.test import RequestFactory
from openpyxl import load_workbook

from reports import export

TABLE = export.Table(
    "Revenue by plan",
    [("plan", "Plan"), ("amount", "Amount"), ("on", "Day")],
    [
        {"plan": '=HYPERLINK("http://x")', "amount": Decimal("1500.50"), "on": date(2026, 5, 1)},
        {"plan": "Home 10M", "amount": Decimal("0.01"), "on": None},
    ],
)


@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("finance", 200),
                                         ("support", 403), ("technician", 403)])  # fmt: skip
def test_reports_are_for_owners_admins_and_finance(alpha, role, status):
    client = alpha.client(alpha.people[role])
    assert client.get("/reports/").status_code == status


def test_the_format_asked_for_in_the_url_is_csv_or_xlsx_and_nothing_else():
    factory = RequestFactory()
    assert export.wanted_format(factory.get("/r/?format=csv")) == "csv"
    assert export.wanted_format(factory.get("/r/?format=xlsx")) == "xlsx"
    assert export.wanted_format(factory.get("/r/?format=../../etc")) is None
    assert export.wanted_format(factory.get("/r/")) is None


def test_csv_defuses_formulas_and_keeps_numbers():
    response = export.download(TABLE, "csv")
    text = response.content.decode()
    assert response["Content-Disposition"] == 'attachment; filename="revenue-by-plan.csv"'
    assert text.splitlines()[0] == "Plan,Amount,Day"
    assert "'=HYPERLINK" in text and "1500.50" in text


def test_xlsx_holds_numbers_as_numbers_and_text_never_as_a_formula():
    response = export.download(TABLE, "xlsx")
    sheet = load_workbook(io.BytesIO(response.content)).active
    assert [c.value for c in sheet[1]] == ["Plan", "Amount", "Day"]
    assert sheet["A2"].data_type == "s" and sheet["A2"].value.startswith("=HYPERLINK")
    assert sheet["B2"].value == 1500.5 and sheet["B3"].value == 0.01
    assert sheet["C2"].value.date() == date(2026, 5, 1)
