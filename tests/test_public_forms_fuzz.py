"""Random form posts to every page anyone may use without signing in (login, password
reset, the pay page and whatever is declared public later: the routes are found in the
URL conf, so a new public view is covered without editing this test). NUL bytes, huge
numbers, bytes that are not UTF-8 and odd field names: never a 500 (issue 12)."""

from urllib.parse import quote_from_bytes

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ispops.staff.access import PUBLIC, declared_roles

FUZZ = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# The M-Pesa endpoints take JSON, not forms: tests/payments/test_callback_fuzz.py.
CALLBACKS = {"c2b_validation", "c2b_confirmation", "stk_callback"}
FIELDS = [
    "username", "password", "email", "account", "phone", "amount", "new_password1",
    "new_password2", "next", "csrfmiddlewaretoken", "code", "\x00", "a[b][c]",
]  # fmt: skip
ARGUMENT = {"int": "1", "slug": "x-1", "str": "x", "path": "x/y", "uuid": "0" * 32}


def public_routes(resolver=None, prefix=""):
    """(path, name) of every public route of an ISP's host, arguments filled in."""
    resolver = resolver or get_resolver("ispops.urls")
    for entry in resolver.url_patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from public_routes(entry, route)
        elif _is_public_form(entry):
            yield _fill(route, entry.pattern.converters), entry.name


def _is_public_form(entry) -> bool:
    return (
        isinstance(entry, URLPattern)
        and declared_roles(entry.callback) == PUBLIC
        and entry.name not in CALLBACKS
    )


def _fill(route: str, converters: dict) -> str:
    for name, converter in converters.items():
        kind = type(converter).__name__.replace("Converter", "").lower()
        route = route.replace(f"<{kind}:{name}>", ARGUMENT.get(kind, "x"))
        route = route.replace(f"<{name}>", "x")
    return "/" + route


ROUTES = sorted(set(public_routes()))

value = st.one_of(
    st.binary(max_size=60),
    st.text(max_size=40).map(str.encode),
    st.sampled_from([b"\x00", b"A\x00B", b"9" * 400, b"1e999", b"-1", b"NaN", b"\xff\xfe"]),
    st.integers(min_value=-(10**40), max_value=10**40).map(lambda n: str(n).encode()),
)
pairs = st.lists(st.tuples(st.sampled_from(FIELDS).map(str.encode), value), max_size=8)
form_bodies = st.one_of(
    pairs.map(
        lambda kv: b"&".join(
            quote_from_bytes(k).encode() + b"=" + quote_from_bytes(v).encode() for k, v in kv
        )
    ),
    pairs.map(lambda kv: b"&".join(k + b"=" + v for k, v in kv)),  # unencoded, as sent
    st.binary(max_size=300),
)


def test_public_routes_are_found():
    names = {name for _, name in ROUTES}
    assert {"login", "password_reset", "pay", "pay_status"} <= names


@pytest.mark.parametrize(("path", "name"), ROUTES, ids=[name for _, name in ROUTES])
def test_no_form_post_to_a_public_page_gives_a_500(alpha, path, name):
    client = alpha.client()
    client.raise_request_exception = False

    @FUZZ
    @given(body=form_bodies)
    def check(body):
        response = client.post(path, data=body, content_type="application/x-www-form-urlencoded")
        assert response.status_code < 500, (response.status_code, path, body)

    check()
