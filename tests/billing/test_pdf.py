"""Invoice and receipt PDFs: what they say, that they are real A4 PDFs, and that making
one never reaches the network or files outside MEDIA_ROOT."""

import http.server
import re
import shutil
import subprocess
import threading
import zlib

import pytest
from django.db import connection
from django_tenants.utils import tenant_context

from billing import pdf, services
from billing.models import BillingSettings, Invoice, LedgerEntry
from tests.billing import test_pages

# The same postpaid customer and invoice as the pages' tests, and their urlconf.
billed = test_pages.billed


# --- reading a PDF without a PDF library ------------------------------------------------


def _streams(data: bytes) -> list[bytes]:
    found = []
    for match in re.finditer(rb"stream\r?\n", data):
        try:
            found.append(zlib.decompressobj().decompress(data[match.end() :]))
        except zlib.error:
            continue
    return found


def page_boxes(data: bytes) -> list[tuple[float, float]]:
    """The (width, height) in points of every page object."""
    boxes = []
    for chunk in [data, *_streams(data)]:
        for match in re.finditer(
            rb"/Type\s*/Page(?![a-zA-Z])[^>]*?/MediaBox\s*\[([^\]]+)\]", chunk
        ):
            x0, y0, x1, y1 = (float(v) for v in match.group(1).split())
            boxes.append((x1 - x0, y1 - y0))
    return boxes


def pdf_text(data: bytes) -> str:
    """The PDF's text: pdftotext if the machine has it; otherwise each text run decoded
    with every ToUnicode map in the file (WeasyPrint writes glyph ids, not characters)."""
    if shutil.which("pdftotext"):
        # -raw: in content-stream order, so rotated text (the VOID watermark) comes out
        # whole rather than letter by letter in layout order.
        done = subprocess.run(
            ["pdftotext", "-raw", "-", "-"], input=data, capture_output=True, check=True, timeout=30
        )
        return done.stdout.decode()
    streams = _streams(data)
    maps = []
    for stream in streams:
        if b"begincmap" not in stream:
            continue
        cmap = {}
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", stream, re.S):
            for src, dst in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block):
                cmap[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", stream, re.S):
            for lo, hi, dst in re.findall(
                rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", block
            ):
                for offset, gid in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                    cmap[gid] = chr(int(dst, 16) + offset)
        maps.append(cmap)
    lines = []
    for stream in streams:
        for run in re.findall(rb"\[(.*?)\]\s*TJ", stream, re.S):
            hexes = b"".join(re.findall(rb"<([0-9a-fA-F]+)>", run)).decode()
            gids = [int(hexes[i : i + 4], 16) for i in range(0, len(hexes), 4)]
            for cmap in maps:
                if gids and all(g in cmap for g in gids):
                    lines.append("".join(cmap[g] for g in gids))
    return "\n".join(lines)


# --- invoices --------------------------------------------------------------------------


def test_invoice_pdf_is_an_a4_pdf_with_the_account_and_paybill(billed):
    data = pdf.invoice_pdf(billed.invoice)
    assert data.startswith(b"%PDF-")
    boxes = page_boxes(data)
    assert len(boxes) >= 1
    width, height = boxes[0]
    assert round(width) == 595 and round(height) == 842  # A4 in points
    text = " ".join(pdf_text(data).split())
    assert billed.customer.account in text
    assert "247247" in text
    assert billed.invoice.number in text


def test_invoice_html_carries_identity_lines_totals_and_how_to_pay(billed):
    html = " ".join(pdf.invoice_html(billed.invoice).split())
    for expected in (
        "Alpha Net Limited",
        "KRA PIN: <strong>P051234567X</strong>",
        billed.customer.name,
        billed.invoice.number,
        "Postpaid 10M",
        "KES 2,000.00",  # subtotal
        "VAT 16% (included in the prices above)",
        "KES 320.00",
        "KES 2,320.00",
    ):
        assert expected in html, expected
    assert (
        f"Pay via M-Pesa paybill <strong>247247</strong>, account "
        f"<strong>{billed.customer.account}</strong>"
    ) in html
    assert 'class="watermark"' not in html


def test_void_invoice_pdf_says_void(billed):
    services.void_invoice(billed.invoice, actor="test", reason="Billed in error")
    html = pdf.invoice_html(billed.invoice)
    assert '<div class="watermark">VOID</div>' in html and "Billed in error" in html
    assert "Pay via M-Pesa" not in html
    assert "VOID" in pdf_text(pdf.invoice_pdf(billed.invoice))


def test_legal_name_falls_back_to_the_isp_name(billed):
    BillingSettings.objects.filter(pk=1).update(legal_name="")
    assert pdf.identity()["name"] == connection.tenant.name == "Alpha Net"
    assert "<h1>Alpha Net</h1>" in pdf.invoice_html(billed.invoice)


def test_logo_is_embedded_from_media_root(billed, settings, tmp_path):
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "logos").mkdir()
    Image.new("RGB", (40, 20), (11, 110, 79)).save(tmp_path / "logos" / "alpha.png")
    BillingSettings.objects.filter(pk=1).update(logo="logos/alpha.png")
    html = pdf.invoice_html(billed.invoice)
    assert 'src="logos/alpha.png"' in html
    data = pdf.invoice_pdf(billed.invoice)
    assert any(b"/Subtype /Image" in chunk for chunk in [data, *_streams(data)])


# --- nothing is fetched from outside ------------------------------------------------------


class _Counting(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):
        self.hits.append(self.path)
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_rendering_never_fetches_urls_or_files_outside_media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    outside = tmp_path / "secret.png"
    from PIL import Image

    Image.new("RGB", (10, 10)).save(outside)
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        data = pdf.render_pdf(
            f'<link rel="stylesheet" href="{base}/style.css">'
            f'<img src="{base}/logo.png"><img src="{outside.as_uri()}">'
            f'<img src="../secret.png"><p style="background: url({base}/bg.png)">Hello</p>'
        )
    finally:
        server.shutdown()
        server.server_close()
    assert data.startswith(b"%PDF-")
    assert _Counting.hits == []
    assert not any(b"/Subtype /Image" in s for s in [data, *_streams(data)])


# --- receipts and the download pages -------------------------------------------------------


def test_receipt_pdf_for_a_payment(billed):
    entry = services.record_payment(
        billed.customer, "3000", actor="test", reference="QK12ABC345", description="M-Pesa"
    )
    html = " ".join(pdf.receipt_html(entry).split())
    assert "QK12ABC345" in html and "KES 3,000.00" in html
    assert "In credit after this payment" in html and "KES 680.00" in html
    data = pdf.receipt_pdf(entry)
    assert data.startswith(b"%PDF-") and len(page_boxes(data)) == 1
    text = pdf_text(data)
    assert billed.customer.account in text and "QK12ABC345" in text


def test_a_receipt_is_only_made_for_a_payment(billed):
    charge = LedgerEntry.objects.get(invoice=billed.invoice, kind=LedgerEntry.Kind.CHARGE)
    with pytest.raises(pdf.PdfError):
        pdf.receipt_pdf(charge)


def test_pdf_pages_download_the_documents(alpha, billed):
    with tenant_context(alpha.isp):
        entry = services.record_payment(billed.customer, "100", actor="test", reference="C-9")
        charge = LedgerEntry.objects.get(invoice=billed.invoice, kind="charge")
    client = alpha.client(alpha.support)
    response = client.get(f"/invoices/{billed.invoice.pk}/pdf/")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-")
    assert billed.invoice.number in response["Content-Disposition"]
    receipt = client.get(f"/receipts/{entry.pk}/pdf/")
    assert receipt.status_code == 200 and receipt.content.startswith(b"%PDF-")
    assert client.get(f"/receipts/{charge.pk}/pdf/").status_code == 404
    with tenant_context(alpha.isp):
        assert Invoice.objects.get(pk=billed.invoice.pk).amount_paid == 100


def test_an_svg_logo_cannot_pull_another_isps_media_file_into_the_pdf(billed, settings, tmp_path):
    from PIL import Image

    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "logos" / "alpha").mkdir(parents=True)
    (tmp_path / "logos" / "beta").mkdir(parents=True)
    Image.new("RGB", (40, 20), (200, 0, 0)).save(tmp_path / "logos" / "beta" / "secret.png")
    outside = tmp_path / "outside.png"
    Image.new("RGB", (40, 20), (0, 0, 200)).save(outside)
    (tmp_path / "logos" / "alpha" / "logo.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"'
        ' width="80" height="40"><rect width="80" height="40" fill="#0b6e4f"/>'
        '<image href="../beta/secret.png" width="40" height="20"/>'
        f'<image xlink:href="{outside.as_uri()}" x="40" width="40" height="20"/></svg>'
    )
    BillingSettings.objects.filter(pk=1).update(logo="logos/alpha/logo.svg")
    data = pdf.invoice_pdf(billed.invoice)
    assert data.startswith(b"%PDF-")
    assert not any(b"/Subtype /Image" in chunk for chunk in [data, *_streams(data)])
