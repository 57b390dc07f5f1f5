"""Printed cards, the CSV of a batch, a card by SMS, and the make_vouchers command."""

import csv
import io
import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import tenant_context

from hotspot import cards, vouchers
from hotspot.models import AgentEntry, Voucher, VoucherBatch
from ispops.messaging import preferences
from ispops.messaging.models import Message
from tests.billing.test_pdf import page_boxes

MM = 72 / 25.4  # points per millimetre


def _sizes_mm(pdf: bytes) -> list[tuple[int, int]]:
    return [(round(w / MM), round(h / MM)) for w, h in page_boxes(pdf)]


@pytest.mark.parametrize("count,pages", [(50, 1), (100, 2), (51, 2)])
def test_a4_sheets_hold_fifty_cards(make_batch, count, pages):
    pdf = cards.cards_pdf(make_batch(count=count), "a4")
    assert pdf.startswith(b"%PDF")
    assert _sizes_mm(pdf) == [(210, 297)] * pages


@pytest.mark.parametrize("layout,width", [("58mm", 58), ("80mm", 80)])
def test_thermal_rolls_print_one_card_a_page_at_the_rolls_width(make_batch, layout, width):
    batch = make_batch(count=3)
    sizes = _sizes_mm(cards.cards_pdf(batch, layout))
    assert len(sizes) == 3 and {w for w, _h in sizes} == {width}


def test_a_card_shows_the_isp_package_price_validity_code_and_a_qr_to_the_hotspot_page(
    make_batch, in_alpha
):
    batch = make_batch(count=1)
    code = batch.vouchers.get().code
    html = cards.cards_html(batch, "a4")
    assert "Alpha Net" in html and "1 hour" in html and "KES 20.00" in html
    assert vouchers.grouped(code) in html
    assert html.count("<svg") == 1 and "<path" in html
    assert vouchers.portal_link(code) == f"https://alpha.localhost/hs/?code={code}"


def test_the_qr_code_encodes_the_link(make_batch):
    """segno's own reading of what it drew: the matrix of the link, module for module."""
    import segno

    link = "https://alpha.localhost/hs/?code=ABCD2345"
    expected = segno.make_qr(link, error="m", mask=2, boost_error=False)
    svg = cards.qr_svg(link)
    assert f'viewBox="0 0 {expected.symbol_size(border=0)[0]}' in svg
    assert expected.svg_inline(border=0, omitsize=True, svgclass="qr") == svg


def test_a_pdf_of_a_batch_loads_nothing_from_outside(make_batch, monkeypatch):
    html = cards.cards_html(make_batch(count=2))
    assert "http://" not in html.replace("https://alpha.localhost", "")
    assert not re.search(r"(src|href)=", html)


def test_the_csv_lists_every_card_with_its_state(in_alpha, make_batch):
    batch = make_batch(count=3)
    first = batch.vouchers.order_by("id").first()
    vouchers.sell(first, phone="0712345678", actor=in_alpha.owner)
    rows = list(vouchers.csv_rows(batch))
    assert rows[0][:4] == ["code", "state", "package", "price"]
    assert len(rows) == 4
    assert rows[1][:2] == [first.code, "sold"] and rows[1][6] == "254712345678"
    assert {r[1] for r in rows[2:]} == {"generated"}


def test_the_csv_download(in_alpha, make_batch):
    batch = make_batch(count=2)
    connection.set_schema_to_public()
    response = in_alpha.client(in_alpha.finance).get(f"/hotspot/batches/{batch.pk}/cards.csv")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv"
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert len(rows) == 3 and rows[0][0] == "code"


def test_the_pdf_download(in_alpha, make_batch):
    batch = make_batch(count=2)
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.support)
    response = client.get(f"/hotspot/batches/{batch.pk}/cards.pdf?layout=58mm")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert len(_sizes_mm(response.content)) == 2
    assert client.get(f"/hotspot/batches/{batch.pk}/cards.pdf?layout=a5").status_code == 404
    assert client.get(f"/hotspot/batches/{batch.pk}/cards.pdf?part=2").status_code == 404


# --- a card by SMS ------------------------------------------------------------------------


def test_a_card_goes_by_sms_to_the_buyer_after_the_sale_commits(
    in_alpha, make_batch, django_capture_on_commit_callbacks
):
    voucher = make_batch(count=1).vouchers.get()
    with django_capture_on_commit_callbacks() as callbacks:
        vouchers.sell(voucher, phone="0712 345 678", send_sms=True, actor=in_alpha.support)
    assert callbacks  # handed to a worker only after the commit
    message = Message.objects.get(template_key="hotspot_voucher")
    assert message.to == "254712345678" and message.customer is None
    assert voucher.code in message.body
    assert "1 hour" in message.body and message.body.startswith("Hello, your Alpha Net")
    assert f"/hs/?code={voucher.code}" in message.body
    assert message.related == f"voucher:{voucher.pk}"


def test_the_voucher_sms_is_a_kind_nobody_can_turn_off():
    kind = preferences.kind_of("hotspot_voucher")
    assert kind is not None and not kind.optional


def test_a_used_or_revoked_card_is_not_sent(in_alpha, make_batch):
    used, revoked = make_batch(count=2).vouchers.order_by("id")
    from django.utils import timezone

    vouchers.mark_redeemed(used, timezone.now())
    vouchers.revoke_voucher(revoked, actor=in_alpha.owner)
    for card in (used, revoked):
        with pytest.raises(vouchers.VoucherError):
            vouchers.send_card_sms(card, "0712345678", actor=in_alpha.owner)
    assert not Message.objects.filter(template_key="hotspot_voucher").exists()


# --- make_vouchers ------------------------------------------------------------------------


def _run(*args) -> str:
    out = StringIO()
    call_command("make_vouchers", *args, stdout=out)
    return out.getvalue()


def test_make_vouchers_prints_the_batch_id_and_writes_the_cards(alpha, tmp_path):
    with tenant_context(alpha.isp):
        from hotspot.models import Package

        Package.objects.create(
            name="Day pass", price="50", validity_minutes=1440, download_kbps=1, upload_kbps=1
        )
    connection.set_schema_to_public()
    pdf = tmp_path / "cards.pdf"
    out = _run("--schema", "alpha", "--package", "day pass", "--count", "60", "--pdf", str(pdf))
    batch_id = int(out.strip())
    with tenant_context(alpha.isp):
        batch = VoucherBatch.objects.get(pk=batch_id)
        assert batch.count == 60 == batch.vouchers.count()
        assert batch.created_by == "make_vouchers command"
    assert _sizes_mm(pdf.read_bytes()) == [(210, 297)] * 2


def test_make_vouchers_gives_the_cards_to_an_agent(alpha):
    with tenant_context(alpha.isp):
        from hotspot.models import Package

        Package.objects.create(
            name="Hour", price="20", validity_minutes=60, download_kbps=1, upload_kbps=1
        )
    connection.set_schema_to_public()
    out = _run(
        "--schema", "alpha", "--package", "Hour", "--count", "5", "--agent", "AGENT@alpha.test"
    )
    with tenant_context(alpha.isp):
        batch = VoucherBatch.objects.get(pk=int(out))
        assert batch.agent == alpha.agent
        assert set(batch.vouchers.values_list("state", flat=True)) == {Voucher.State.ASSIGNED}
        entry = AgentEntry.objects.get(agent=alpha.agent, batch=batch)
        assert entry.amount == -100


@pytest.mark.parametrize(
    "args,error",
    [
        (["--schema", "nosuch", "--package", "Hour", "--count", "5"], "no ISP with schema"),
        (["--schema", "alpha", "--package", "Nope", "--count", "5"], "no package named 'Nope'"),
        (["--schema", "alpha", "--package", "Hour", "--count", "0"], "--count must be"),
        (["--schema", "alpha", "--package", "Hour", "--count", "10001"], "--count must be"),
        (
            ["--schema", "alpha", "--package", "Hour", "--count", "5", "--agent", "x@y.z"],
            "no login 'x@y.z'",
        ),
        (
            [
                "--schema",
                "alpha",
                "--package",
                "Hour",
                "--count",
                "5",
                "--agent",
                "owner@alpha.test",
            ],
            "is not an active voucher agent",
        ),
        (
            [
                "--schema",
                "alpha",
                "--package",
                "Hour",
                "--count",
                "5",
                "--pdf",
                "/nonexistent/x.pdf",
            ],
            "cannot write",
        ),
    ],
)
def test_make_vouchers_refuses_bad_input_in_one_line_and_makes_nothing(alpha, args, error):
    with tenant_context(alpha.isp):
        from hotspot.models import Package

        Package.objects.create(
            name="Hour", price="20", validity_minutes=60, download_kbps=1, upload_kbps=1
        )
    connection.set_schema_to_public()
    with pytest.raises(CommandError) as failed:
        _run(*args)
    assert error in str(failed.value) and "\n" not in str(failed.value)
    with tenant_context(alpha.isp):
        assert not VoucherBatch.objects.exists() and not Voucher.objects.exists()


def test_make_vouchers_exits_non_zero_from_the_shell(alpha):
    """The real entry point: a one-line error on stderr and exit status 1."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    done = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "make_vouchers",
            "--schema",
            "nosuch",
            "--package",
            "x",
            "--count",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**__import__("os").environ, "DATABASE_URL": _database_url()},
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["CommandError: no ISP with schema 'nosuch'"]
    assert done.stdout == ""


def _database_url() -> str:
    from tests.conftest import subprocess_database_url

    return subprocess_database_url()


def test_a_big_batch_prints_on_the_web_in_parts(in_alpha, make_batch):
    from hotspot.views import PDF_MAX

    batch = make_batch(count=PDF_MAX + 1)
    connection.set_schema_to_public()
    client = in_alpha.client(in_alpha.owner)
    page = client.get(f"/hotspot/batches/{batch.pk}/").content.decode()
    dash = "\u2013"
    assert f"A4 1{dash}{PDF_MAX}" in page and f"A4 {PDF_MAX + 1}{dash}{PDF_MAX + 1}" in page
    last = client.get(f"/hotspot/batches/{batch.pk}/cards.pdf?part=2")
    assert last.status_code == 200 and _sizes_mm(last.content) == [(210, 297)]
    assert "part2" in last["Content-Disposition"]
    assert client.get(f"/hotspot/batches/{batch.pk}/cards.pdf?part=3").status_code == 404
