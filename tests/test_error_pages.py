"""The 403, 404 and 500 pages say what happened and what to do, in the site's layout
(500 without the database); the login page names the ISP, not the host."""

from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.test import RequestFactory
from django.views import defaults
from django_tenants.utils import tenant_context

from billing.models import BillingSettings


def test_403_is_styled_and_says_whom_to_ask(alpha):
    response = alpha.client(alpha.support).get("/settings/")
    assert response.status_code == 403
    page = response.content.decode()
    assert 'class="topbar"' in page and "Alpha Net" in page  # the site's own layout
    assert "You can't open this page" in page
    assert "ask your ISP's owner or an admin" in page
    assert 'href="/"' in page and "Go to the home page" in page


def test_403_to_someone_signed_out_offers_to_sign_in(alpha):
    request = RequestFactory().get("/somewhere/")
    request.user = AnonymousUser()
    with tenant_context(alpha.isp):
        response = defaults.permission_denied(request, PermissionDenied("Closed."))
    page = response.content.decode()
    assert response.status_code == 403
    assert "Closed." in page and 'href="/login/?next=/somewhere/"' in page and "Sign in" in page


def test_404_is_styled_with_a_search_and_the_way_home(alpha):
    response = alpha.client(alpha.owner).get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert 'class="topbar"' in page
    assert "This page isn't here" in page
    assert 'action="/subscribers/"' in page and 'name="q"' in page
    assert "Go to the home page" in page


def test_500_needs_no_database_and_says_what_to_do(django_assert_num_queries):
    request = RequestFactory().get("/broken/")
    with django_assert_num_queries(0):
        response = defaults.server_error(request)
    page = response.content.decode()
    assert response.status_code == 500
    assert "Something went wrong on our side" in page and "Try again in a minute" in page
    assert 'href="/"' in page and "/static/css/ispops.css" in page


def test_login_page_names_the_isp_not_the_host(alpha):
    page = alpha.client().get("/login/").content.decode()
    assert "<h1>Alpha Net</h1>" in page
    assert "<title>Log in · Alpha Net" in page
    assert alpha.host not in page
    assert "auth-logo" not in page  # no logo stored


def test_login_page_shows_the_isps_logo(alpha):
    with tenant_context(alpha.isp):
        cfg = BillingSettings.load()
        cfg.logo.save("logo.png", ContentFile(b"\x89PNG\r\n\x1a\n"), save=True)
    page = alpha.client().get("/login/").content.decode()
    assert '<img class="auth-logo" src="/my/logo/" alt="Alpha Net">' in page


def test_404_on_the_platform_host_and_an_unknown_host_is_the_styled_page(tenants, db, settings):
    from django.test import Client

    platform = Client(HTTP_HOST=settings.PLATFORM_DOMAIN).get("/no-such-page/")
    assert platform.status_code == 404
    assert "This page isn't here" in platform.content.decode()
    unknown = Client(HTTP_HOST=f"nobody.{settings.PLATFORM_DOMAIN}").get("/")
    assert unknown.status_code == 404
    assert "This page isn't here" in unknown.content.decode()
