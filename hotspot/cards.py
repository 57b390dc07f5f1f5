"""Printable voucher cards: A4 sheets of 50 (5 x 10, cut along the lines) and 58 mm or
80 mm thermal rolls (one card per page: the printer cuts between pages).

Each card shows the ISP's name, the package, its price and validity, the code in large
monospace type and a QR code that opens the hotspot page with the code filled in. The
QR codes are inline SVG made by segno; the PDF is made by WeasyPrint with the same
local-only fetcher as invoices (billing.pdf.render_pdf), so nothing is loaded from
anywhere.
"""

from dataclasses import dataclass

from django.db import connection
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe

from hotspot import vouchers
from hotspot.models import Voucher, VoucherBatch
from ispops.lib.money import format_kes


@dataclass(frozen=True)
class Layout:
    key: str
    label: str
    per_page: int
    columns: int


LAYOUTS = {
    "a4": Layout("a4", "A4, 50 cards a page", 50, 5),
    "58mm": Layout("58mm", "58 mm thermal roll", 1, 1),
    "80mm": Layout("80mm", "80 mm thermal roll", 1, 1),
}


def qr_svg(text: str) -> str:
    """`text` as a QR code in inline SVG (sized by CSS). A fixed mask: choosing the best
    of eight is two thirds of the work and any mask scans; 10,000 cards must render in
    seconds."""
    import segno

    code = segno.make_qr(text, error="m", mask=2, boost_error=False)
    return code.svg_inline(border=0, omitsize=True, svgclass="qr")


def cards_html(batch: VoucherBatch, layout: str = "a4", cards=None) -> str:
    """The HTML of a batch's cards (all of them, or `cards`: vouchers of the batch)."""
    chosen = LAYOUTS[layout]
    package = batch.package
    if cards is None:
        cards = Voucher.objects.filter(batch=batch).order_by("id")
    isp_name = getattr(connection.tenant, "name", "")
    common = {
        "package": package.name,
        "price": format_kes(batch.price),
        "validity": vouchers.validity_text(package.validity_minutes),
    }
    items = [
        {
            "code": vouchers.grouped(card.code),
            # segno writes the SVG from the code alone: nothing typed by anyone.
            "qr": mark_safe(qr_svg(vouchers.portal_link(card.code))),
        }
        for card in cards
    ]
    if chosen.columns > 1:
        # Cards placed absolutely on the sheet: a table or flex layout of 10,000 cards
        # takes WeasyPrint twice as long.
        for i, item in enumerate(items):
            row, column = divmod(i % chosen.per_page, chosen.columns)
            item["left"], item["top"] = f"{column * 40}mm", f"{row * 28.4:.1f}mm"
    pages = [items[i : i + chosen.per_page] for i in range(0, len(items), chosen.per_page)]
    return render_to_string(
        "hotspot/pdf/cards.html",
        {"layout": chosen.key, "pages": pages, "isp_name": isp_name, **common},
    )


def cards_pdf(batch: VoucherBatch, layout: str = "a4", cards=None) -> bytes:
    from billing.pdf import render_pdf

    return render_pdf(cards_html(batch, layout, cards))
