"""The Daraja simulator plays Safaricom's side over real HTTP: a `requests` client on one
side, a local http.server receiving the callbacks on the other."""

import base64
import hashlib
import json
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
import requests

from payments.simulator import DarajaSimulator, stk_password

PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
PHONE = "254708374149"


class Receiver:
    """A callback endpoint: records every POST and answers what `answers[path]` says."""

    def __init__(self):
        self.received: list[tuple[str, dict, dict]] = []
        self.answers: dict[str, tuple[int, dict]] = {}
        self.arrived = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.arrived:
                    receiver.received.append((self.path, json.loads(raw), dict(self.headers)))
                    receiver.arrived.notify_all()
                status, answer = receiver.answers.get(
                    self.path, (200, {"ResultCode": 0, "ResultDesc": "Accepted"})
                )
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, count: int, timeout: float = 5.0) -> list[tuple[str, dict, dict]]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)


@pytest.fixture
def sim():
    with DarajaSimulator(consumer_key="ck", consumer_secret="cs", passkey=PASSKEY) as simulator:
        yield simulator


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


def token(sim) -> str:
    answer = requests.get(
        f"{sim.base_url}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("ck", "cs"),
        timeout=5,
    )
    assert answer.status_code == 200
    return answer.json()["access_token"]


def timestamp() -> str:
    return datetime.now(ZoneInfo("Africa/Nairobi")).strftime("%Y%m%d%H%M%S")


def stk_push(sim, callback_url, *, phone=PHONE, password=None, bearer=None, amount=10):
    stamp = timestamp()
    body = {
        "BusinessShortCode": "174379",
        "Password": password or stk_password("174379", PASSKEY, stamp),
        "Timestamp": stamp,
        "TransactionType": "CustomerPayBillOnline",
        "Amount": amount,
        "PartyA": phone,
        "PartyB": "174379",
        "PhoneNumber": phone,
        "CallBackURL": callback_url,
        "AccountReference": "ACC1001",
        "TransactionDesc": "Internet",
    }
    return requests.post(
        f"{sim.base_url}/mpesa/stkpush/v1/processrequest",
        json=body,
        headers={"Authorization": f"Bearer {bearer or token(sim)}"},
        timeout=5,
    )


def stk_query(sim, checkout, bearer):
    stamp = timestamp()
    return requests.post(
        f"{sim.base_url}/mpesa/stkpushquery/v1/query",
        json={
            "BusinessShortCode": "174379",
            "Password": stk_password("174379", PASSKEY, stamp),
            "Timestamp": stamp,
            "CheckoutRequestID": checkout,
        },
        headers={"Authorization": f"Bearer {bearer}"},
        timeout=5,
    )


def register(sim, receiver, *, version="v1", response_type="Completed", validation=True):
    return requests.post(
        f"{sim.base_url}/mpesa/c2b/{version}/registerurl",
        json={
            "ShortCode": "600984",
            "ResponseType": response_type,
            "ConfirmationURL": receiver.url("/payments/c2b/confirmation/TOKEN/"),
            "ValidationURL": receiver.url("/payments/c2b/validation/TOKEN/") if validation else "",
        },
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )


# ---- OAuth ------------------------------------------------------------------------------


def test_oauth_gives_a_token_whose_expires_in_is_a_string(sim):
    answer = requests.get(
        f"{sim.base_url}/oauth/v1/generate?grant_type=client_credentials",
        headers={"Authorization": "Basic " + base64.b64encode(b"ck:cs").decode()},
        timeout=5,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["expires_in"] == "3599"
    assert len(body["access_token"]) == 28 and body["access_token"].isalnum()
    assert sim.requests[-1][0] == "GET"


def test_oauth_with_wrong_credentials_answers_the_error_envelope(sim):
    answer = requests.get(
        f"{sim.base_url}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("ck", "wrong"),
        timeout=5,
    )
    assert answer.status_code == 400
    body = answer.json()
    assert body["errorCode"] == "400.008.01"
    assert set(body) == {"requestId", "errorCode", "errorMessage"}


def test_oauth_with_a_wrong_grant_type_is_refused(sim):
    answer = requests.get(
        f"{sim.base_url}/oauth/v1/generate", params={"grant_type": "password"}, auth=("ck", "cs")
    )
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "400.008.02"


def test_a_new_token_invalidates_the_previous_one(sim, receiver):
    old = token(sim)
    new = token(sim)
    refused = stk_push(sim, receiver.url("/payments/stk/callback/T/"), bearer=old)
    assert refused.status_code == 404
    assert refused.json()["errorCode"] == "404.001.03"
    assert refused.json()["errorMessage"] == "Invalid Access Token"
    assert stk_push(sim, receiver.url("/payments/stk/callback/T/"), bearer=new).status_code == 200


def test_fail_next_token_fails_once(sim):
    sim.fail_next_token = True
    answer = requests.get(
        f"{sim.base_url}/oauth/v1/generate",
        params={"grant_type": "client_credentials"},
        auth=("ck", "cs"),
        timeout=5,
    )
    assert answer.status_code >= 400
    assert "errorCode" in answer.json()
    assert token(sim)


def test_an_expired_token_is_refused():
    with DarajaSimulator(passkey=PASSKEY, token_ttl=0) as short:
        expired = token(short)
        answer = stk_push(short, "http://127.0.0.1:9/cb/", bearer=expired)
    assert answer.status_code == 404
    assert answer.json()["errorCode"] == "404.001.03"


def test_a_missing_bearer_header_is_refused(sim):
    answer = requests.post(f"{sim.base_url}/mpesa/stkpush/v1/processrequest", json={}, timeout=5)
    assert answer.status_code == 404
    assert answer.json()["errorCode"] == "404.001.04"


# ---- STK push ---------------------------------------------------------------------------


def test_stk_push_success_sends_a_callback_with_numeric_codes_and_no_account_reference(
    sim, receiver
):
    answer = stk_push(sim, receiver.url("/payments/stk/callback/TOKEN/"), amount="10")
    assert answer.status_code == 200
    sync = answer.json()
    assert sync["ResponseCode"] == "0"
    assert sync["ResponseDescription"] == "Success. Request accepted for processing"
    assert sync["CustomerMessage"] == "Success. Request accepted for processing"
    assert sync["CheckoutRequestID"].startswith("ws_CO_")
    assert sync["CheckoutRequestID"].endswith(PHONE[3:])

    [(path, body, headers)] = receiver.wait(1)
    assert path == "/payments/stk/callback/TOKEN/"
    assert headers["Content-Type"] == "application/json"
    callback = body["Body"]["stkCallback"]
    assert callback["ResultCode"] == 0
    assert callback["MerchantRequestID"] == sync["MerchantRequestID"]
    assert callback["CheckoutRequestID"] == sync["CheckoutRequestID"]
    assert "AccountReference" not in json.dumps(body)
    items = {item["Name"]: item["Value"] for item in callback["CallbackMetadata"]["Item"]}
    assert items["Amount"] == 10
    assert isinstance(items["TransactionDate"], int) and len(str(items["TransactionDate"])) == 14
    assert items["PhoneNumber"] == int(PHONE)
    receipt = items["MpesaReceiptNumber"]
    assert len(receipt) == 10 and receipt.isalnum() and receipt.isupper()


@pytest.mark.parametrize(
    ("outcome", "code"), [("cancelled", 1032), ("timeout", 1037), ("insufficient", 1)]
)
def test_stk_failures_send_their_result_code_without_metadata(sim, receiver, outcome, code):
    sim.stk_outcome(PHONE, outcome)
    assert stk_push(sim, receiver.url("/payments/stk/callback/TOKEN/")).status_code == 200
    [(_, body, _)] = receiver.wait(1)
    callback = body["Body"]["stkCallback"]
    assert callback["ResultCode"] == code
    assert "CallbackMetadata" not in callback
    # the preset applies to one push only; the next one succeeds
    stk_push(sim, receiver.url("/payments/stk/callback/TOKEN/"))
    second = receiver.wait(2)[1][1]["Body"]["stkCallback"]
    assert second["ResultCode"] == 0


def test_stk_query_is_500_while_pending_then_gives_a_string_result_code(sim, receiver):
    sim.callback_delay = 0.6
    sim.stk_outcome(PHONE, "cancelled")
    bearer = token(sim)
    checkout = stk_push(sim, receiver.url("/payments/stk/callback/T/"), bearer=bearer).json()[
        "CheckoutRequestID"
    ]
    pending = stk_query(sim, checkout, bearer)
    assert pending.status_code == 500
    assert pending.json()["errorCode"] == "500.001.1001"
    assert pending.json()["errorMessage"] == "The transaction is being processed"

    receiver.wait(1)
    final = stk_query(sim, checkout, bearer)
    assert final.status_code == 200
    body = final.json()
    assert body["ResultCode"] == "1032"
    assert body["ResponseCode"] == "0"
    assert body["ResponseDescription"] == "The service request has been accepted successsfully"


def test_stk_push_with_a_wrong_password_is_refused_and_sends_nothing(sim, receiver):
    bad = base64.b64encode(b"174379wrongpasskey20250101000000").decode()
    answer = stk_push(sim, receiver.url("/payments/stk/callback/T/"), password=bad)
    assert answer.status_code == 500
    assert answer.json()["errorCode"] == "500.001.1001"
    assert answer.json()["errorMessage"] == "Wrong credentials"
    sim.wait_idle()
    assert receiver.received == []


def test_stk_push_with_a_utc_timestamp_is_an_invalid_timestamp(sim):
    stamp = datetime.now(ZoneInfo("UTC")).strftime("%Y%m%d%H%M%S")
    answer = requests.post(
        f"{sim.base_url}/mpesa/stkpush/v1/processrequest",
        json={
            "BusinessShortCode": "174379",
            "Password": stk_password("174379", PASSKEY, stamp),
            "Timestamp": stamp,
        },
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )
    assert answer.status_code == 400
    assert answer.json()["errorMessage"] == "Bad Request - Invalid Timestamp"


def test_stk_push_with_a_bad_phone_number_is_a_bad_request(sim):
    answer = stk_push(sim, "http://127.0.0.1:9/cb/", phone="0708374149")
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "400.002.02"


def test_stk_callback_to_a_non_loopback_url_is_refused(sim):
    answer = stk_push(sim, "https://example.com/payments/stk/callback/T/")
    assert answer.status_code == 200  # Safaricom accepts it; the simulator will not send
    assert sim.wait_idle()
    assert sim.refused_callbacks == ["https://example.com/payments/stk/callback/T/"]
    assert sim.callbacks[-1]["status"] is None


# ---- C2B --------------------------------------------------------------------------------


def test_c2b_register_answers_with_the_misspelled_originator_key(sim, receiver):
    answer = register(sim, receiver)
    assert answer.status_code == 200
    body = answer.json()
    assert body["ResponseCode"] == "0" and body["ResponseDescription"] == "Success"
    assert "OriginatorCoversationID" in body
    assert sim.registered_urls["600984"]["ResponseType"] == "Completed"


def test_c2b_register_refuses_urls_with_banned_words(sim, receiver):
    answer = requests.post(
        f"{sim.base_url}/mpesa/c2b/v1/registerurl",
        json={
            "ShortCode": "600984",
            "ResponseType": "Completed",
            "ConfirmationURL": receiver.url("/mpesa/confirm/"),
        },
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )
    assert answer.status_code == 400


def test_pay_c2b_sends_validation_then_confirmation_with_safaricom_fields(sim, receiver):
    register(sim, receiver, version="v1")
    sent = sim.pay_c2b("600984", PHONE, 1500, "ACC1001", first_name="KELVIN")
    assert sent["outcome"] == "completed"
    [(vpath, validation, _), (cpath, confirmation, _)] = receiver.wait(2)
    assert vpath == "/payments/c2b/validation/TOKEN/"
    assert cpath == "/payments/c2b/confirmation/TOKEN/"
    assert validation["OrgAccountBalance"] == ""
    assert confirmation["TransactionType"] == "Pay Bill"
    assert confirmation["TransID"] == sent["TransID"] and len(sent["TransID"]) == 10
    assert len(confirmation["TransTime"]) == 14 and confirmation["TransTime"].isdigit()
    assert confirmation["TransAmount"] == "1500.00"
    assert confirmation["BusinessShortCode"] == "600984"
    assert confirmation["BillRefNumber"] == "ACC1001"
    assert confirmation["MSISDN"] == hashlib.sha256(PHONE.encode()).hexdigest()
    assert confirmation["FirstName"] == "KELVIN"
    assert confirmation["OrgAccountBalance"] == "1500.00"
    assert sent["confirmation"]["response"] == {"ResultCode": 0, "ResultDesc": "Accepted"}


def test_pay_c2b_on_v2_masks_the_msisdn_and_keeps_a_given_trans_id(sim, receiver):
    register(sim, receiver, version="v2", validation=False)
    sent = sim.pay_c2b("600984", PHONE, "50", "acc1001 ", trans_id="UAN1ABCDEF")
    [(path, confirmation, _)] = receiver.wait(1)
    assert path == "/payments/c2b/confirmation/TOKEN/"
    assert confirmation["MSISDN"] == "2547 ***** 149"
    assert confirmation["TransID"] == "UAN1ABCDEF" == sent["TransID"]
    assert confirmation["BillRefNumber"] == "acc1001 "  # customers type it by hand
    assert sent["validation"] is None


def test_a_rejected_validation_sends_no_confirmation(sim, receiver):
    register(sim, receiver)
    receiver.answers["/payments/c2b/validation/TOKEN/"] = (
        200,
        {"ResultCode": "C2B00012", "ResultDesc": "Rejected"},
    )
    sent = sim.pay_c2b("600984", PHONE, 100, "NOSUCH")
    assert sent["outcome"] == "rejected"
    assert sent["confirmation"] is None
    assert [path for path, _, _ in receiver.received] == ["/payments/c2b/validation/TOKEN/"]


def test_an_unreachable_validation_url_applies_the_registered_default(sim, receiver):
    register(sim, receiver, response_type="Cancelled")
    receiver.answers["/payments/c2b/validation/TOKEN/"] = (500, {"error": "boom"})
    assert sim.pay_c2b("600984", PHONE, 100, "ACC1")["outcome"] == "rejected"
    register(sim, receiver, response_type="Completed")
    assert sim.pay_c2b("600984", PHONE, 100, "ACC1")["outcome"] == "completed"


def test_pay_c2b_refuses_a_non_loopback_confirmation_url(sim):
    requests.post(
        f"{sim.base_url}/mpesa/c2b/v1/registerurl",
        json={
            "ShortCode": "600984",
            "ResponseType": "Completed",
            "ConfirmationURL": "http://10.0.0.5/payments/c2b/confirmation/T/",
        },
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )
    sent = sim.pay_c2b("600984", PHONE, 100, "ACC1")
    assert sent["confirmation"]["error"].startswith("refused")
    assert sim.refused_callbacks == ["http://10.0.0.5/payments/c2b/confirmation/T/"]


def test_callbacks_to_a_tenant_localhost_host_keep_the_host_header(sim, receiver):
    register_url = f"http://alpha.localhost:{receiver.port}/payments/c2b/confirmation/T/"
    requests.post(
        f"{sim.base_url}/mpesa/c2b/v2/registerurl",
        json={"ShortCode": "600984", "ResponseType": "Completed", "ConfirmationURL": register_url},
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )
    sim.pay_c2b("600984", PHONE, 100, "ACC1")
    [(_, _, headers)] = receiver.wait(1)
    assert headers["Host"] == f"alpha.localhost:{receiver.port}"


# ---- Transaction Status -----------------------------------------------------------------


def test_transaction_status_of_a_known_receipt_posts_a_completed_result(sim, receiver):
    register(sim, receiver, validation=False)
    receipt = sim.pay_c2b("600984", PHONE, 250, "ACC1")["TransID"]
    answer = requests.post(
        f"{sim.base_url}/mpesa/transactionstatus/v1/query",
        json={
            "Initiator": "testapi",
            "SecurityCredential": "opaque",
            "CommandID": "TransactionStatusQuery",
            "TransactionID": receipt,
            "PartyA": "600984",
            "IdentifierType": "4",
            "ResultURL": receiver.url("/result/"),
            "QueueTimeOutURL": receiver.url("/timeout/"),
            "Remarks": "check",
            "Occasion": "Query",
        },
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )
    assert answer.status_code == 200
    assert answer.json()["ResponseCode"] == "0"
    assert answer.json()["ConversationID"].startswith("AG_")
    path, body, _ = receiver.wait(2)[1]
    assert path == "/result/"
    result = body["Result"]
    assert result["ResultCode"] == 0
    params = {p["Key"]: p.get("Value") for p in result["ResultParameters"]["ResultParameter"]}
    assert params["ReceiptNo"] == receipt
    assert params["Amount"] == 250.0
    assert params["TransactionStatus"] == "Completed"


def test_transaction_status_of_an_unknown_receipt_fails_with_2001(sim, receiver):
    requests.post(
        f"{sim.base_url}/mpesa/transactionstatus/v1/query",
        json={
            "Initiator": "testapi",
            "SecurityCredential": "opaque",
            "CommandID": "TransactionStatusQuery",
            "TransactionID": "UAN0000XYZ",
            "PartyA": "600984",
            "IdentifierType": "4",
            "ResultURL": receiver.url("/result/"),
            "QueueTimeOutURL": receiver.url("/timeout/"),
        },
        headers={"Authorization": f"Bearer {token(sim)}"},
        timeout=5,
    )
    [(_, body, _)] = receiver.wait(1)
    assert body["Result"]["ResultCode"] == 2001
    assert "ResultParameters" not in body["Result"]


def test_unknown_paths_and_wrong_methods_answer_the_error_envelope(sim):
    assert requests.get(f"{sim.base_url}/nope", timeout=5).json()["errorCode"] == "404.001.01"
    wrong = requests.post(f"{sim.base_url}/oauth/v1/generate", timeout=5)
    assert wrong.status_code == 405


def test_the_simulator_stops_and_frees_its_port():
    sim = DarajaSimulator(passkey=PASSKEY).start()
    url = sim.base_url
    sim.stop()
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/oauth/v1/generate", timeout=2)
    assert time.monotonic() - started < 2
