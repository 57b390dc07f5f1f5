"""CSV import of items: all rows or none, every bad row with its line number, dry run,
and the import_items command."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command

from inventory.imports import import_items
from inventory.models import Item, Movement

HEADER = "serial,model,store,mac,supplier,purchased_on,cost\n"
GOOD = (
    HEADER
    + "hwtc 0001,huawei hg8145v5,main store,aa:bb:cc:00:00:01,Wananchi Supplies,2026-01-10,3500\n"
    + "HWTC0002,Huawei HG8145V5,Main store,,,,\n"
)


def test_a_good_file_imports_every_row_with_a_received_movement(alpha, store, ont):
    report = import_items(GOOD, actor=alpha.admin)
    assert report.ok and report.created == 2
    item = Item.objects.get(serial="HWTC0001")
    assert item.mac == "AA:BB:CC:00:00:01" and str(item.cost) == "3500.00"
    assert item.store == store and item.state == "in_stock"
    assert set(Movement.objects.values_list("kind", "actor_label")) == {
        ("received", alpha.admin.email)
    }
    assert Movement.objects.count() == 2


def test_one_bad_row_imports_nothing_and_every_bad_row_has_its_line(receive, store, ont):
    receive("EXISTING1")
    text = (
        HEADER
        + "GOOD1,Huawei HG8145V5,Main store,,,,\n"  # line 2: fine
        + "GOOD2,No such model,Main store,,,,\n"  # 3
        + "GOOD3,Huawei HG8145V5,Main store,zz,,,\n"  # 4
        + "good 1,Huawei HG8145V5,Main store,,,,\n"  # 5: same as line 2
        + "EXISTING1,Huawei HG8145V5,Main store,,,,\n"  # 6
        + "GOOD4,Huawei HG8145V5,Nowhere,,,2026-13-01,-5\n"  # 7
    )
    before = Item.objects.count()
    report = import_items(text, actor="test")
    assert not report.ok and report.created == 0
    lines = [e["line"] for e in report.errors]
    assert lines == [3, 4, 5, 6, 7]
    reasons = {e["line"]: e["reason"] for e in report.errors}
    assert "no equipment model named 'No such model'" in reasons[3]
    assert "not a MAC address" in reasons[4]
    assert "serial GOOD1 is also on line 2" in reasons[5]
    assert "serial EXISTING1 is already recorded" in reasons[6]
    assert "no store named 'Nowhere'" in reasons[7]
    assert Item.objects.count() == before


def test_a_dry_run_checks_and_writes_nothing(store, ont):
    report = import_items(GOOD, actor="test", dry_run=True)
    assert report.ok and report.summary() == "would import 2 of 2 row(s)"
    assert not Item.objects.exists()


def test_the_command_prints_line_numbered_errors_and_fails(alpha, store, ont, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "X1,Huawei HG8145V5,Main store,,,,\nX2,Nope,Main store,,,,\n")
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_items", "--schema", "alpha", str(bad))
    assert "line 3: no equipment model named 'Nope'" in capsys.readouterr().err
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    call_command("import_items", "--schema", "alpha", str(good))
    assert "imported 2 of 2 row(s)" in capsys.readouterr().out


def test_the_import_page_shows_the_report_and_refuses_others(alpha, store, ont):
    upload = SimpleUploadedFile("items.csv", GOOD.replace("HWTC0002", "hwtc 0001").encode())
    page = alpha.client(alpha.admin).post("/inventory/import/", {"file": upload})
    assert page.status_code == 400
    assert "serial HWTC0001 is also on line 2" in page.content.decode()
    assert not Item.objects.exists()
    upload = SimpleUploadedFile("items.csv", GOOD.encode())
    page = alpha.client(alpha.admin).post("/inventory/import/", {"file": upload})
    assert page.status_code == 200 and Item.objects.count() == 2
    assert alpha.client(alpha.support).get("/inventory/import/").status_code == 403


BIG_HEADER = "serial,model,store," + "x" * (128 * 1024 + 1) + "\nX1,Huawei HG8145V5,Main store,\n"


def test_an_overlong_header_cell_is_a_400_on_the_page_and_imports_nothing(alpha, store, ont):
    upload = SimpleUploadedFile("items.csv", BIG_HEADER.encode())
    page = alpha.client(alpha.admin).post("/inventory/import/", {"file": upload})
    assert page.status_code == 400
    assert "characters long" in page.content.decode()
    assert not Item.objects.exists()


def test_an_overlong_header_cell_is_a_one_line_command_error(alpha, store, ont, tmp_path, capsys):
    bad = tmp_path / "big.csv"
    bad.write_text(BIG_HEADER)
    with pytest.raises(CommandError, match="1 bad row"):
        call_command("import_items", "--schema", "alpha", str(bad))
    assert "line 1: a value is over 10,000 characters long" in capsys.readouterr().err
    assert not Item.objects.exists()


def test_a_file_with_cr_only_line_ends_is_read_line_by_line(alpha, store, ont):
    # Excel for Mac's "CSV (Macintosh)": it used to be one line with CRs in it (a 500).
    upload = SimpleUploadedFile("items.csv", GOOD.replace("\n", "\r").encode())
    page = alpha.client(alpha.admin).post("/inventory/import/", {"file": upload})
    assert page.status_code == 200 and Item.objects.count() == 2
    report = import_items(HEADER.replace("\n", "\r") + "X1,Nope,Main store\r", actor="test")
    assert report.errors == [{"line": 2, "reason": "no equipment model named 'Nope'"}]
