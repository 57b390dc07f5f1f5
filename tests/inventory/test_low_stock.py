"""Low-stock alerts: raised once when a store's stock of a model drops below its
minimum, not repeated while it stays low, raised again after it recovered."""

from inventory import services
from inventory.models import Movement, StockThreshold

Kind = Movement.Kind


def test_low_stock_is_raised_once_per_dip_and_emailed_once(
    alpha, receive, store, ont, django_capture_on_commit_callbacks, mailoutbox
):
    items = [receive() for _ in range(3)]
    threshold = services.set_threshold(actor=alpha.owner, model=ont, store=store, minimum=2)
    assert threshold.low_since is None

    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.move(items[0], Kind.ISSUED, actor="test", holder=alpha.technician)  # 2 left
        assert StockThreshold.objects.get().low_since is None
        services.move(items[1], Kind.ISSUED, actor="test", holder=alpha.technician)  # 1 left
        dip = StockThreshold.objects.get()
        assert dip.low_since is not None and dip.in_stock == 1
        services.move(items[2], Kind.FAULTY, actor="test")  # 0 left: still the same dip
    assert len(queued) == 1  # one alert queued for the whole dip
    again = StockThreshold.objects.get()
    assert again.low_since == dip.low_since and again.in_stock == 0

    assert services.notify_low_stock(dip.pk) is True
    assert services.notify_low_stock(dip.pk) is False  # a duplicate delivery sends nothing
    assert len(mailoutbox) == 1
    mail = mailoutbox[0]
    assert "Low stock: Huawei HG8145V5 at Main store" in mail.subject
    assert sorted(mail.to) == sorted([alpha.owner.email, alpha.admin.email])
    assert "0 Huawei HG8145V5 in stock, below the minimum of 2" in mail.body

    # Back at the minimum: the dip closes; the next drop is a new one.
    services.move(items[0], Kind.RETURNED, actor="test")
    services.move(items[1], Kind.RETURNED, actor="test")
    assert StockThreshold.objects.get().low_since is None
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.move(items[1], Kind.ISSUED, actor="test", holder=alpha.technician)
    assert len(queued) == 1
    assert StockThreshold.objects.get().low_since is not None


def test_the_stock_page_lists_low_stock_and_highlights_the_row(alpha, receive, store, ont):
    receive()
    services.set_threshold(actor=alpha.owner, model=ont, store=store, minimum=5)
    page = alpha.client(alpha.support).get("/inventory/stock/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "<strong>Huawei HG8145V5</strong> at Main store: 1 in stock, minimum 5" in html
    assert 'class="low"' in html


def test_the_periodic_check_requeues_an_alert_that_was_never_sent(
    alpha, receive, store, ont, django_capture_on_commit_callbacks
):
    receive()
    with django_capture_on_commit_callbacks(execute=False):
        services.set_threshold(actor=alpha.owner, model=ont, store=store, minimum=3)
    with django_capture_on_commit_callbacks(execute=False) as queued:
        assert services.check_all_thresholds() == 1
    assert len(queued) == 1  # notified_at is still empty: the email goes out again
