"""Message templates run in a sandbox (security issue 12, findings 9 and 11): a whitelist
of tags and filters, so include, extends, load and debug are refused when a template is
saved, previewed or rendered (a stored one that predates the rule included), and loops
are bounded, so no template can pin a web or worker process."""

import logging
import time

import pytest
from django_tenants.utils import tenant_context

from ispops.messaging import sandbox, services
from ispops.messaging.models import MessageTemplate
from tests.test_messaging import customer, make_customer  # noqa: F401 (fixture)

EDIT_URL = "/messages/templates/service_restored/sms/"
# Six nested loops over the customer's name: 1.1 s with Django's engine, ten times more
# per level.
NESTED_LOOPS = (
    "".join(f"{{% for c{i} in customer.name %}}" for i in range(6)) + "x" + "{% endfor %}" * 6
)
REFUSED = [
    '{% include "base.html" %}',
    '{% extends "base.html" %}',
    "{% load humanize %}",
    "{% debug %}",
    '{% url "staff:login" %}',
    "{% csrf_token %}",
    "{% templatetag openblock %}",
    "{% lorem 100000 w %}",
]


@pytest.mark.parametrize("text", REFUSED)
def test_saving_a_template_with_a_tag_outside_the_whitelist_is_refused(in_alpha, text):
    with pytest.raises(services.MessagingError, match="not allowed"):
        services.save_template(
            "service_restored", "sms", subject="", body=text, is_active=True, actor="test"
        )
    assert not MessageTemplate.objects.exists()


def test_saving_deeply_nested_loops_is_refused(in_alpha):
    with pytest.raises(services.MessagingError, match="nested"):
        services.check_template(NESTED_LOOPS)


def test_filters_that_make_text_of_any_size_are_refused(in_alpha):
    for text in ('{{ customer.name|center:"999999999" }}', '{{ x|stringformat:"999999s" }}'):
        with pytest.raises(services.MessagingError, match="Invalid filter"):
            services.check_template(text)


@pytest.mark.parametrize("text", ["{% debug %}", '{% include "base.html" %}', NESTED_LOOPS])
def test_a_stored_template_that_predates_the_sandbox_is_not_run(customer, caplog, text):  # noqa: F811
    MessageTemplate.objects.create(key="service_restored", channel="sms", body=text)
    with caplog.at_level(logging.ERROR, logger="ispops.messaging.services"):
        (message,) = services.notify(customer, "service_restored")
    assert message.body.startswith("Wanjiru Kamau, your internet is back on.")
    assert "service_restored/sms" in caplog.text


def test_loops_stop_at_the_render_budget_quickly(in_alpha):
    # Two levels are allowed, but not two levels over a long text.
    template = sandbox.compile_template(
        "{% for a in text %}{% for b in text %}x{% endfor %}{% endfor %}"
    )
    started = time.monotonic()
    with pytest.raises(sandbox.TemplateRefused, match="loops ran over"):
        sandbox.render(template, {"text": "y" * 5000})
    assert time.monotonic() - started < 1


def test_a_stored_template_over_the_budget_falls_back_to_the_default(customer, caplog):  # noqa: F811
    MessageTemplate.objects.create(
        key="service_restored",
        channel="sms",
        body="{% for a in customer.email %}{% for b in customer.email %}"
        "{% for c in customer.name %}x{% endfor %}{% endfor %}{% endfor %}",
    )
    with caplog.at_level(logging.ERROR, logger="ispops.messaging.services"):
        (message,) = services.notify(customer, "service_restored")
    assert message.body.startswith("Wanjiru Kamau, your internet is back on.")


def test_whitelisted_tags_and_filters_still_work(in_alpha):
    _subject, body = services.render_text(
        "",
        "{% if customer.first_name %}Hi {{ customer.first_name|upper }}{% endif %}"
        "{% for c in plan %}{% if forloop.first %}{{ c }}{% endif %}{% endfor %}"
        "{% with n=customer.name %}, {{ n|truncatechars:4 }}{% endwith %} {{ 1234567|intcomma }}"
        ' {{ due_on|date:"j M" }} {{ 2.5|floatformat:"99999" }}',
        services.sample_context(),
    )
    assert body.startswith("Hi WANJIRUH, Wan… 1,234,567 ")
    assert body.endswith(" 2.500000")  # six decimals at most, not 99999


def test_preview_of_an_include_is_an_error_not_a_500(alpha):
    client = alpha.client(alpha.owner)
    response = client.post(EDIT_URL + "preview/", {"body": '{% include "base.html" %}'})
    assert response.status_code == 200
    assert "not allowed" in response.content.decode()


def test_preview_and_save_of_debug_show_a_form_error(alpha):
    client = alpha.client(alpha.owner)
    response = client.post(EDIT_URL, {"body": "{% debug %}", "is_active": "on"})
    assert response.status_code == 200
    assert "not allowed in message templates" in response.content.decode()
    with tenant_context(alpha.isp):
        assert not MessageTemplate.objects.exists()
