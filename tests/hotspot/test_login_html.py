"""The router's login.html and its companions (hotspot_login_html): every variable the
captive page needs is forwarded in MikroTik's $(var) syntax, CHAP's only when the router
has it, with the router's signed reference, to this ISP's /hs/; a visible button
without JavaScript, a submit by script with it."""

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from hotspot import captive
from network.models import Router

FORWARDED = (
    "mac",
    "ip",
    "link-login-only",
    "link-orig",
    "chap-id",
    "chap-challenge",
    "identity",
    "server-name",
    "error",
)


@pytest.fixture
def router(in_alpha):
    return Router.objects.create(name="hs-stage", host="10.9.0.1", username="api")


@override_settings(PUBLIC_SCHEME="https", PUBLIC_PORT="")
def test_login_html_forwards_every_variable_and_the_signed_router_to_the_isps_page(router):
    page = captive.router_pages(router)["login.html"]
    form = re.search(r'<form id="hs" name="hs" method="get" action="([^"]+)">', page)
    assert form and form.group(1) == "https://alpha.localhost/hs/"
    for name in FORWARDED:
        assert f'<input type="hidden" name="{name}" value="$({name})">' in page, name
    ref = re.search(r'name="r" value="([^"]+)"', page).group(1)
    assert captive.check_router_ref(ref) == router.pk
    assert '<button type="submit">Continue</button>' in page  # JavaScript off
    assert '<script>document.getElementById("hs").submit();</script>' in page


def test_chap_variables_are_forwarded_only_when_the_router_has_them(router):
    page = captive.router_pages(router)["login.html"]
    branch = re.search(r"\$\(if chap-id\)(.*?)\$\(endif\)", page, re.S)
    assert branch, page
    assert 'name="chap-id" value="$(chap-id)"' in branch.group(1)
    assert 'name="chap-challenge" value="$(chap-challenge)"' in branch.group(1)
    outside = page.replace(branch.group(0), "")
    assert "chap-" not in outside.split("<form", 1)[1]


def test_the_companions_a_hotspot_needs_come_with_it(router):
    pages = captive.router_pages(router)
    assert set(pages) == {
        "login.html",
        "alogin.html",
        "redirect.html",
        "rlogin.html",
        "status.html",
        "logout.html",
        "error.html",
    }
    assert "$(link-redirect)" in pages["alogin.html"]
    assert (
        "$(link-redirect)" in pages["rlogin.html"] and "$(link-redirect)" in pages["redirect.html"]
    )
    assert "$(link-logout)" in pages["status.html"] and "$(link-login)" in pages["logout.html"]
    assert "$(error)" in pages["error.html"]
    # The status page's "buy more" reaches /hs/ with the router's reference.
    assert captive.router_ref(router.pk) in pages["status.html"]


def test_a_router_reference_opens_nothing_on_another_isp(router, beta):
    ref = captive.router_ref(router.pk)
    with tenant_context(beta.isp), pytest.raises(captive.BadDevice):
        captive.check_router_ref(ref)
    with pytest.raises(captive.BadDevice):
        captive.check_router_ref(ref[:-1] + ("A" if ref[-1] != "A" else "B"))


def test_the_command_writes_the_pages_into_a_directory(router, tmp_path, alpha):
    out = StringIO()
    connection.set_schema_to_public()
    call_command(
        "hotspot_login_html", "--schema", "alpha", "hs-stage", "--out", str(tmp_path), stdout=out
    )
    written = sorted(p.name for p in tmp_path.iterdir())
    assert "login.html" in written and "alogin.html" in written and len(written) == 7
    text = (tmp_path / "login.html").read_text()
    assert "/hs/" in text and "$(mac)" in text
    with pytest.raises(CommandError, match="no router named"):
        call_command("hotspot_login_html", "--schema", "alpha", "nowhere", "--out", str(tmp_path))


def test_pages_made_under_an_old_secret_key_keep_working_while_it_rolls_out(router, settings):
    ref = captive.router_ref(router.pk)
    old = settings.SECRET_KEY
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "a-new-key-" + "x" * 50, [old]
    assert captive.check_router_ref(ref) == router.pk
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(captive.BadDevice):
        captive.check_router_ref(ref)
