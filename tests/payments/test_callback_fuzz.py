"""Random bodies to every M-Pesa callback endpoint, with the ISP's real token so the
parsing is reached: NUL bytes, huge numbers, deep nesting, bytes that are not UTF-8,
wrong types, missing fields. Never a 500, and never "Accepted" unless a callback row
was stored for it (issue 12)."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from payments import services
from payments.models import Callback, MpesaSettings

FUZZ = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

nasty_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.sampled_from('\x00\x01\n"\\{}[]\u202e\ufffdA9'), max_size=20),
    st.sampled_from(["", "\x00", "UCN0FUZZ01", "A\x00B", "1" * 400, "NaN", "-1", "0.001"]),
)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=10**20, max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
)
leaf = st.one_of(st.none(), st.booleans(), numbers, nasty_text)
json_value = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(nasty_text, inner, max_size=4)
    ),
    max_leaves=12,
)
C2B_KEYS = ["TransID", "TransAmount", "BillRefNumber", "FirstName", "MSISDN", "TransTime"]
c2b_like = st.fixed_dictionaries(
    {}, optional={key: st.one_of(leaf, json_value) for key in C2B_KEYS}
).map(lambda d: json.dumps(d).encode())
stk_like = st.builds(
    lambda checkout, code, items: json.dumps(
        {
            "Body": {
                "stkCallback": {
                    "CheckoutRequestID": checkout,
                    "ResultCode": code,
                    "CallbackMetadata": {"Item": items},
                }
            }
        }
    ).encode(),
    st.one_of(nasty_text, numbers),
    st.one_of(st.just(0), st.just("0"), leaf),
    st.lists(
        st.fixed_dictionaries(
            {"Name": st.sampled_from(["Amount", "MpesaReceiptNumber", "PhoneNumber"])},
            optional={"Value": leaf},
        ),
        max_size=4,
    ),
)
deep = st.integers(min_value=11, max_value=20_000).map(lambda n: (b"[" * n + b"]" * n)[: 16 * 1024])
bodies = st.one_of(
    st.binary(max_size=400),
    json_value.map(lambda v: json.dumps(v).encode()),
    c2b_like,
    stk_like,
    deep,
    c2b_like.map(lambda b: b.replace(b"\\u0000", b"\x00")),  # raw NUL bytes
    c2b_like.map(lambda b: b[:-1] + b', "x": "\xff\xfe"}' if len(b) > 2 else b),
    st.sampled_from([b"1e999999", b'{"a": 1e999}', b'{"a": ' + b"9" * 5000 + b"}", b"NaN"]),
)


@pytest.fixture
def paths(in_alpha):
    return services.callback_paths(MpesaSettings.load())


@pytest.mark.parametrize("kind", ["validation", "confirmation", "stk"])
def test_no_callback_body_gives_a_500_or_an_unstored_accepted(alpha, paths, kind):
    client = alpha.client()
    client.raise_request_exception = False

    @FUZZ
    @given(body=bodies)
    def check(body):
        before = Callback.objects.count()
        response = client.post(paths[kind], data=body, content_type="application/json")
        assert response.status_code in (200, 400), (response.status_code, body)
        answer = response.json()
        stored = Callback.objects.count() - before
        if answer.get("ResultDesc") == "Accepted":
            assert response.status_code == 200 and stored == 1, body
        if response.status_code == 400:
            assert answer["ResultDesc"].startswith("Rejected: ")

    check()
