"""An offline Safaricom Daraja sandbox: Safaricom's side of OAuth, M-Pesa Express (STK push
and query), C2B URL registration and payments, and Transaction Status, over real HTTP.

The wire formats and quirks follow shared/daraja.md: `expires_in` is the string "3599"; a
new token invalidates the previous one; the STK callback carries a numeric ResultCode and no
AccountReference while the STK query answers string codes (and HTTP 500 while pending); C2B
notifications carry TransAmount as a string and a hashed (v1) or masked (v2) MSISDN.

Callbacks go only to loopback hosts (127.0.0.1, ::1, localhost and *.localhost, the last
connected at 127.0.0.1 with the original Host header so django-tenants routes them): this
machine must never send traffic elsewhere. Any other URL is logged and skipped.
"""

import base64
import binascii
import hashlib
import http.client
import ipaddress
import itertools
import json
import logging
import re
import secrets
import string
import threading
import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

log = logging.getLogger(__name__)

NAIROBI = ZoneInfo("Africa/Nairobi")
SANDBOX_PASSKEY = "bfb279f9aa9bdbcf158e97dd71a467cd2e0c893059b10f78e6b72ada1ed2c919"
PHONE_RE = re.compile(r"^254[17]\d{8}$")
TIMESTAMP_RE = re.compile(r"^\d{14}$")
ALNUM = string.ascii_uppercase + string.digits
DAY_CHARS = "123456789ABCDEFGHIJKLMNOPQRSTUV"

# outcome name -> (ResultCode, ResultDesc) as Safaricom sends them in the STK callback
STK_OUTCOMES = {
    "success": (0, "The service request is processed successfully."),
    "cancelled": (1032, "Request cancelled by user"),
    "timeout": (1037, "DS timeout user cannot be reached"),
    "insufficient": (1, "The balance is insufficient for the transaction."),
    "expired": (1019, "Transaction has expired."),
    "wrong_pin": (2001, "The initiator information is invalid."),
    "locked": (
        1001,
        "Unable to lock subscriber, a transaction is already in process for the current subscriber",
    ),
    "rule_limited": (17, "Rule limited."),
    # Safaricom's side finishes, but the callback never arrives (common in the sandbox)
    "lost": (0, "The service request is processed successfully."),
    # the callback arrives twice (handlers must be idempotent)
    "duplicate": (0, "The service request is processed successfully."),
}


class DarajaError(Exception):
    """A synchronous error answer: Safaricom's {requestId, errorCode, errorMessage}."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.request_id = status, code, message, request_id


def now_nairobi() -> datetime:
    return datetime.now(NAIROBI)


def stk_password(shortcode: str, passkey: str, timestamp: str) -> str:
    """Password = base64(BusinessShortCode + Passkey + Timestamp), as the client computes it."""
    return base64.b64encode(f"{shortcode}{passkey}{timestamp}".encode()).decode()


def receipt_number(when: datetime) -> str:
    """An M-Pesa receipt like TAH5J2K991: year letter (L=2017), month letter, day char, 7 random."""
    year = chr(ord("L") + when.year - 2017)
    month = chr(ord("A") + when.month - 1)
    tail = "".join(secrets.choice(ALNUM) for _ in range(7))
    return f"{year}{month}{DAY_CHARS[when.day - 1]}{tail}"


def mask_msisdn(msisdn: str) -> str:
    """C2B v2 masking, e.g. 254708374149 -> "2547 ***** 149"."""
    return f"{msisdn[:4]} ***** {msisdn[-3:]}"


def hash_msisdn(msisdn: str) -> str:
    """C2B v1: the MSISDN as a SHA-256 hex digest."""
    return hashlib.sha256(msisdn.encode()).hexdigest()


def is_loopback_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    if parts.scheme not in ("http", "https"):
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class DarajaSimulator:
    """Safaricom's side of Daraja on a local port, for tests and `manage.py daraja_simulator`.

    sim = DarajaSimulator(port=0).start(); sim.base_url; ...; sim.stop()  (or `with`).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        consumer_key: str = "ck",
        consumer_secret: str = "cs",
        shortcode: str = "174379",
        passkey: str = SANDBOX_PASSKEY,
        token_ttl: int = 3599,
        initiator: str = "testapi",
    ):
        self.host, self.port = host, port
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.shortcode, self.passkey = str(shortcode), passkey
        self.token_ttl = token_ttl
        self.initiator = initiator
        self.callback_delay = 0.0
        self.fail_next_token = False
        self.validation_timeout = 8.0  # Safaricom waits about 8 s for the ValidationURL
        # Timestamps further than this from Nairobi time are "Invalid Timestamp" (catches
        # clients that send UTC); None disables the check.
        self.timestamp_skew: float | None = 3600.0
        self.external_validation = True  # call the ValidationURL when one is registered
        # An STK payment to a paybill is also a C2B payment ("NI push"): when True, a
        # successful STK push is followed by the C2B confirmation of the same receipt.
        self.stk_confirms_c2b = False
        self.requests: list[tuple[str, str, object, dict]] = []
        self.registered_urls: dict[str, dict] = {}
        self.callbacks: list[dict] = []  # every callback sent: url, body, status, response
        self.refused_callbacks: list[str] = []  # non-loopback URLs that were skipped
        self.transactions: dict[str, dict] = {}  # CheckoutRequestID -> STK state
        self.receipts: dict[str, dict] = {}  # receipt -> completed payment (TS lookups)
        self._outcomes: dict[str, list[str]] = {}
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._counter = itertools.count(1)
        self._balances: dict[str, Decimal] = {}
        self._server: ThreadingHTTPServer | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> "DarajaSimulator":
        sim = self

        class Handler(_Handler):
            simulator = sim

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.wait_idle(timeout=2)

    def __enter__(self) -> "DarajaSimulator":
        return self if self._server else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until every callback thread started so far has finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            return not self._threads

    # ---- test controls -----------------------------------------------------------------

    def stk_outcome(self, phone: str, result: str) -> None:
        """Preset the outcome of the next STK push to `phone` (queued, one per push)."""
        if result not in STK_OUTCOMES:
            raise ValueError(f"unknown STK outcome {result!r}; one of {sorted(STK_OUTCOMES)}")
        with self._lock:
            self._outcomes.setdefault(str(phone), []).append(result)

    # ---- ids ---------------------------------------------------------------------------

    def _merchant_request_id(self) -> str:
        h = secrets.token_hex(10)
        return f"{h[:4]}-{h[4:8]}-{h[8:12]}-{secrets.token_hex(6)}{next(self._counter)}"

    def _conversation_id(self, when: datetime) -> str:
        return f"AG_{when:%Y%m%d}_{secrets.token_hex(10)}"

    # ---- OAuth -------------------------------------------------------------------------

    def oauth(self, query: dict, headers) -> dict:
        if self.fail_next_token:
            self.fail_next_token = False
            raise DarajaError(500, "500.003.1001", "Internal Server Error")
        if query.get("grant_type", [""])[0] != "client_credentials":
            raise DarajaError(400, "400.008.02", "Invalid grant type passed")
        auth = headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "basic":
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        try:
            key, _, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed") from None
        if not (
            secrets.compare_digest(key, self.consumer_key)
            and secrets.compare_digest(secret, self.consumer_secret)
        ):
            raise DarajaError(400, "400.008.01", "Invalid Authentication passed")
        token = "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(28))
        with self._lock:  # a new token invalidates the previous one
            self._token = (token, time.monotonic() + self.token_ttl)
        return {"access_token": token, "expires_in": str(self.token_ttl)}

    def _check_bearer(self, headers, code: str, status: int) -> None:
        auth = headers.get("Authorization") or ""
        scheme, _, value = auth.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise DarajaError(404, "404.001.04", "Invalid Authentication Header")
        with self._lock:
            current = self._token
        if (
            current is None
            or not secrets.compare_digest(value.strip(), current[0])
            or time.monotonic() >= current[1]
        ):
            raise DarajaError(status, code, "Invalid Access Token")

    # ---- STK push ----------------------------------------------------------------------

    def _check_stk_credentials(self, body: dict) -> tuple[str, str]:
        shortcode = str(body.get("BusinessShortCode", "")).strip()
        if not shortcode.isdigit():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
        timestamp = str(body.get("Timestamp", ""))
        if not TIMESTAMP_RE.match(timestamp):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Timestamp")
        try:
            sent = datetime.strptime(timestamp, "%Y%m%d%H%M%S").replace(tzinfo=NAIROBI)
        except ValueError:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Timestamp") from None
        skew = self.timestamp_skew
        if skew is not None and abs((sent - now_nairobi()).total_seconds()) > skew:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Timestamp")
        if shortcode != self.shortcode:
            raise DarajaError(500, "500.001.1001", "Merchant does not exist")
        expected = stk_password(shortcode, self.passkey, timestamp)
        if not secrets.compare_digest(str(body.get("Password", "")), expected):
            raise DarajaError(500, "500.001.1001", "Wrong credentials")
        return shortcode, timestamp

    def stk_push(self, body: dict) -> dict:
        shortcode, _ = self._check_stk_credentials(body)
        kind = body.get("TransactionType")
        if kind not in ("CustomerPayBillOnline", "CustomerBuyGoodsOnline"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid TransactionType")
        amount = _whole_amount(body.get("Amount"))
        if amount is None or not 1 <= amount <= 250_000:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Amount")
        for field in ("PartyA", "PhoneNumber"):
            if not PHONE_RE.match(str(body.get(field, ""))):
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {field}")
        if not str(body.get("PartyB", "")).isdigit():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid PartyB")
        callback = body.get("CallBackURL")
        if not isinstance(callback, str) or urlsplit(callback).scheme not in ("http", "https"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CallBackURL")
        reference = body.get("AccountReference")
        if not isinstance(reference, str) or not reference or len(reference) > 12:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid AccountReference")

        phone = str(body["PhoneNumber"])
        when = now_nairobi()
        checkout = f"ws_CO_{when:%d%m%Y%H%M%S}{when.microsecond // 1000:03d}{phone[3:]}"
        merchant = self._merchant_request_id()
        with self._lock:
            queue = self._outcomes.get(phone) or []
            outcome = queue.pop(0) if queue else "success"
            self.transactions[checkout] = {
                "MerchantRequestID": merchant,
                "CheckoutRequestID": checkout,
                "state": "pending",
                "outcome": outcome,
                "amount": amount,
                "phone": phone,
                "shortcode": shortcode,
                "account_reference": reference,
                "callback_url": callback,
                "result": None,
                "paybill": kind == "CustomerPayBillOnline",
            }
        self._spawn(self._finish_stk, checkout)
        return {
            "MerchantRequestID": merchant,
            "CheckoutRequestID": checkout,
            "ResponseCode": "0",
            "ResponseDescription": "Success. Request accepted for processing",
            "CustomerMessage": "Success. Request accepted for processing",
        }

    def _finish_stk(self, checkout: str) -> None:
        if self.callback_delay:
            time.sleep(self.callback_delay)
        with self._lock:
            tx = self.transactions[checkout]
            code, desc = STK_OUTCOMES[tx["outcome"]]
            callback = {
                "MerchantRequestID": tx["MerchantRequestID"],
                "CheckoutRequestID": checkout,
                "ResultCode": code,
                "ResultDesc": desc,
            }
            if code == 0:
                when = now_nairobi()
                receipt = receipt_number(when)
                callback["CallbackMetadata"] = {
                    "Item": [
                        {"Name": "Amount", "Value": tx["amount"]},
                        {"Name": "MpesaReceiptNumber", "Value": receipt},
                        {"Name": "TransactionDate", "Value": int(f"{when:%Y%m%d%H%M%S}")},
                        {"Name": "PhoneNumber", "Value": int(tx["phone"])},
                    ]
                }
                tx["receipt"] = receipt
                self.receipts[receipt] = {
                    "amount": tx["amount"],
                    "msisdn": tx["phone"],
                    "shortcode": tx["shortcode"],
                    "when": when,
                    "reason": "Pay Bill Online",
                }
            tx["result"] = (code, desc)
            tx["state"] = "done"
        payload = {"Body": {"stkCallback": callback}}
        if tx["outcome"] != "lost":
            self._post(tx["callback_url"], payload)
            if tx["outcome"] == "duplicate":
                self._post(tx["callback_url"], payload)
        if code == 0 and self.stk_confirms_c2b and tx.get("paybill", True):
            self._confirm_c2b(
                tx["shortcode"], tx["phone"], tx["amount"], tx["account_reference"], receipt
            )

    def stk_query(self, body: dict) -> dict:
        self._check_stk_credentials(body)
        checkout = str(body.get("CheckoutRequestID", ""))
        with self._lock:
            tx = self.transactions.get(checkout)
            if tx is None:
                raise DarajaError(400, "400.002.02", "Bad Request - Invalid CheckoutRequestID")
            if tx["state"] == "pending":
                raise DarajaError(
                    500, "500.001.1001", "The transaction is being processed", checkout
                )
            code, desc = tx["result"]
        return {
            "ResponseCode": "0",
            "ResponseDescription": "The service request has been accepted successsfully",
            "MerchantRequestID": tx["MerchantRequestID"],
            "CheckoutRequestID": checkout,
            "ResultCode": str(code),
            "ResultDesc": desc,
        }

    # ---- C2B ---------------------------------------------------------------------------

    def register_urls(self, body: dict, version: str) -> dict:
        shortcode = str(body.get("ShortCode", "")).strip()
        if not shortcode.isdigit():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ShortCode")
        if body.get("ResponseType") not in ("Completed", "Cancelled"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ResponseType")
        confirmation = body.get("ConfirmationURL")
        if not isinstance(confirmation, str) or not confirmation.startswith(("http:", "https:")):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ConfirmationURL")
        validation = body.get("ValidationURL") or ""
        for url in (confirmation, validation):
            lowered = url.lower()
            banned = ("mpesa", "m-pesa", "safaricom", "exe", "cmd", "sql", "query")
            if any(word in lowered for word in banned):
                raise DarajaError(400, "400.002.02", "Bad Request - Invalid URL")
        with self._lock:  # the sandbox allows re-registering freely
            self.registered_urls[shortcode] = {
                "ValidationURL": validation,
                "ConfirmationURL": confirmation,
                "ResponseType": body["ResponseType"],
                "version": version,
            }
        return {
            "OriginatorCoversationID": self._merchant_request_id(),
            "ResponseCode": "0",
            "ResponseDescription": "Success",
        }

    def pay_c2b(
        self,
        shortcode: str,
        msisdn: str,
        amount,
        bill_ref: str,
        *,
        trans_id: str | None = None,
        first_name: str = "JOHN",
        middle_name: str = "",
        last_name: str = "",
        transaction_type: str = "Pay Bill",
    ) -> dict:
        """A customer pays the paybill: validation (when a ValidationURL is registered and
        external validation is on), then the confirmation unless it was rejected. Synchronous;
        returns {"TransID", "outcome", "validation", "confirmation"} where the last two are
        {"url", "body", "status", "response", "error"} or None."""
        shortcode = str(shortcode)
        msisdn = str(msisdn)
        when = now_nairobi()
        trans_id = trans_id or receipt_number(when)
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
        with self._lock:
            urls = self.registered_urls.get(shortcode)
        result = {"TransID": trans_id, "outcome": "completed", "validation": None}
        result["confirmation"] = None
        if urls is None:  # nothing registered: the payment completes silently
            self._record_receipt(trans_id, value, msisdn, shortcode, when)
            return result
        masked = hash_msisdn(msisdn) if urls["version"] == "v1" else mask_msisdn(msisdn)
        payload = {
            "TransactionType": transaction_type,
            "TransID": trans_id,
            "TransTime": f"{when:%Y%m%d%H%M%S}",
            "TransAmount": f"{value:.2f}",
            "BusinessShortCode": shortcode,
            "BillRefNumber": bill_ref,
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": masked,
            "FirstName": first_name,
            "MiddleName": middle_name,
            "LastName": last_name,
        }
        if urls["ValidationURL"] and self.external_validation:
            sent = self._post(urls["ValidationURL"], payload, timeout=self.validation_timeout)
            result["validation"] = sent
            answer = sent["response"] if isinstance(sent["response"], dict) else None
            if answer is None or sent["status"] != 200:
                accepted = urls["ResponseType"] == "Completed"  # the registered default
            else:
                accepted = str(answer.get("ResultCode")) == "0"
                payload["ThirdPartyTransID"] = str(answer.get("ThirdPartyTransID") or "")
            if not accepted:
                result["outcome"] = "rejected"
                return result
        with self._lock:
            balance = self._balances.get(shortcode, Decimal("0.00")) + value
            self._balances[shortcode] = balance
        payload["OrgAccountBalance"] = f"{balance:.2f}"
        self._record_receipt(trans_id, value, msisdn, shortcode, when)
        result["confirmation"] = self._post(urls["ConfirmationURL"], payload)
        return result

    def _confirm_c2b(self, shortcode, msisdn, amount, bill_ref, receipt) -> None:
        """The C2B confirmation an STK payment to a paybill also produces (no validation:
        the payer already approved it on the phone)."""
        with self._lock:
            urls = self.registered_urls.get(str(shortcode))
        if urls is None:
            return
        when = now_nairobi()
        value = Decimal(str(amount)).quantize(Decimal("0.01"))
        msisdn = str(msisdn)
        payload = {
            "TransactionType": "Pay Bill",
            "TransID": receipt,
            "TransTime": f"{when:%Y%m%d%H%M%S}",
            "TransAmount": f"{value:.2f}",
            "BusinessShortCode": str(shortcode),
            "BillRefNumber": bill_ref,
            "InvoiceNumber": "",
            "OrgAccountBalance": "",
            "ThirdPartyTransID": "",
            "MSISDN": hash_msisdn(msisdn) if urls["version"] == "v1" else mask_msisdn(msisdn),
            "FirstName": "",
            "MiddleName": "",
            "LastName": "",
        }
        self._post(urls["ConfirmationURL"], payload)

    def simulate_c2b(self, body: dict) -> dict:
        """The sandbox's C2B simulate call: the payment runs in the background (validation,
        then confirmation) and the answer comes at once, as on Daraja."""
        shortcode = str(body.get("ShortCode", "")).strip()
        if not shortcode.isdigit():
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid ShortCode")
        command = body.get("CommandID")
        if command not in ("CustomerPayBillOnline", "CustomerBuyGoodsOnline"):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        amount = _whole_amount(body.get("Amount"))
        if amount is None or amount < 1:
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Amount")
        msisdn = str(body.get("Msisdn", "")).strip()
        if not PHONE_RE.match(msisdn):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid Msisdn")
        kind = "Pay Bill" if command == "CustomerPayBillOnline" else "Buy Goods"
        bill_ref = str(body.get("BillRefNumber") or "")
        self._spawn(
            lambda: self.pay_c2b(shortcode, msisdn, amount, bill_ref, transaction_type=kind)
        )
        return {
            "OriginatorCoversationID": self._merchant_request_id(),
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        }

    def _record_receipt(self, receipt, amount, msisdn, shortcode, when) -> None:
        with self._lock:
            self.receipts[receipt] = {
                "amount": amount,
                "msisdn": msisdn,
                "shortcode": shortcode,
                "when": when,
                "reason": "Pay Bill",
            }

    # ---- Transaction Status ------------------------------------------------------------

    def transaction_status(self, body: dict) -> dict:
        for field in ("Initiator", "SecurityCredential", "PartyA", "ResultURL"):
            if not str(body.get(field) or "").strip():
                raise DarajaError(400, "400.002.02", f"Bad Request - Invalid {field}")
        if body.get("CommandID") != "TransactionStatusQuery":
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid CommandID")
        if not (body.get("TransactionID") or body.get("OriginalConversationID")):
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid TransactionID")
        when = now_nairobi()
        originator = self._merchant_request_id()
        conversation = self._conversation_id(when)
        self._spawn(self._finish_status, dict(body), originator, conversation)
        return {
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "ResponseCode": "0",
            "ResponseDescription": "Accept the service request successfully.",
        }

    def _finish_status(self, body: dict, originator: str, conversation: str) -> None:
        if self.callback_delay:
            time.sleep(self.callback_delay)
        receipt = str(body.get("TransactionID") or "")
        with self._lock:
            paid = self.receipts.get(receipt)
        placeholder = receipt[:3] + "0000000" if len(receipt) >= 3 else "MAS0000000"
        result = {
            "ResultType": 0,
            "OriginatorConversationID": originator,
            "ConversationID": conversation,
            "TransactionID": placeholder,
            "ReferenceData": {
                "ReferenceItem": {"Key": "Occasion", "Value": str(body.get("Occasion") or "")}
            },
        }
        if body.get("Initiator") != self.initiator or paid is None:
            result["ResultCode"] = 2001
            result["ResultDesc"] = "The initiator information is invalid."
        else:
            stamp = int(f"{paid['when']:%Y%m%d%H%M%S}")
            msisdn = paid["msisdn"]
            result["ResultCode"] = 0
            result["ResultDesc"] = "The service request is processed successfully."
            result["ResultParameters"] = {
                "ResultParameter": [
                    {"Key": "DebitPartyName", "Value": f"0{msisdn[3:]} - JOHN DOE"},
                    {"Key": "CreditPartyName", "Value": f"{paid['shortcode']} -  ISPOPS DEMO"},
                    {"Key": "OriginatorConversationID", "Value": originator},
                    {"Key": "InitiatedTime", "Value": stamp},
                    {"Key": "CreditPartyCharges"},
                    {"Key": "DebitAccountType", "Value": "MMF Account For Customer"},
                    {"Key": "TransactionReason"},
                    {"Key": "ReasonType", "Value": paid["reason"]},
                    {"Key": "TransactionStatus", "Value": "Completed"},
                    {"Key": "FinalisedTime", "Value": stamp},
                    {"Key": "Amount", "Value": float(paid["amount"])},
                    {"Key": "ConversationID", "Value": conversation},
                    {"Key": "ReceiptNo", "Value": receipt},
                ]
            }
        self._post(str(body["ResultURL"]), {"Result": result})

    # ---- outgoing callbacks ------------------------------------------------------------

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            self._threads.append(thread)
        thread.start()

    def _post(self, url: str, payload: dict, timeout: float = 10.0) -> dict:
        """POST JSON to a loopback URL; anything else is refused (logged and skipped)."""
        sent = {"url": url, "body": payload, "status": None, "response": None, "error": None}
        if not is_loopback_url(url):
            log.warning("daraja simulator: refusing non-loopback callback URL %s", url)
            sent["error"] = "refused: not a loopback URL"
            with self._lock:
                self.refused_callbacks.append(url)
                self.callbacks.append(sent)
            return sent
        parts = urlsplit(url)
        host = parts.hostname or "127.0.0.1"
        if host == "localhost" or host.endswith(".localhost"):
            host = "127.0.0.1"  # *.localhost may not resolve; keep the Host header instead
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn_cls = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        data = json.dumps(payload).encode()
        headers = {
            "Host": parts.netloc.rpartition("@")[2],
            "Content-Type": "application/json",
            "Content-Length": str(len(data)),
            "User-Agent": "Apache-HttpClient/4.5.5 (Java/1.8.0_144)",
        }
        try:
            conn = conn_cls(host, parts.port, timeout=timeout)
            try:
                conn.request("POST", path, body=data, headers=headers)
                response = conn.getresponse()
                raw = response.read()
                sent["status"] = response.status
            finally:
                conn.close()
            try:
                sent["response"] = json.loads(raw) if raw else None
            except ValueError:
                sent["response"] = raw.decode(errors="replace")
        except (OSError, http.client.HTTPException) as exc:
            log.warning("daraja simulator: callback to %s failed: %s", url, exc)
            sent["error"] = str(exc) or type(exc).__name__
        with self._lock:
            self.callbacks.append(sent)
        return sent


def _whole_amount(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite() or number != number.to_integral_value():
        return None
    return int(number)


class _Handler(BaseHTTPRequestHandler):
    simulator: DarajaSimulator
    protocol_version = "HTTP/1.1"
    server_version = "Daraja-simulator"

    def log_message(self, format, *args):  # keep test output quiet
        log.debug("daraja simulator: " + format, *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        sim = self.simulator
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with sim._lock:
            sim.requests.append((method, self.path, body, dict(self.headers.items())))
        parts = urlsplit(self.path)
        route = parts.path.rstrip("/")
        try:
            status, answer = 200, self._route(method, route, parts.query, body)
        except DarajaError as exc:
            status = exc.status
            answer = {
                "requestId": exc.request_id
                or f"{secrets.randbelow(90000) + 10000}-{secrets.randbelow(9000000) + 1000000}-1",
                "errorCode": exc.code,
                "errorMessage": exc.message,
            }
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str, route: str, query: str, body) -> dict:
        sim = self.simulator
        routes = {
            "/oauth/v1/generate": ("GET", None),
            "/mpesa/stkpush/v1/processrequest": ("POST", ("404.001.03", 404)),
            "/mpesa/stkpushquery/v1/query": ("POST", ("404.001.03", 404)),
            "/mpesa/c2b/v1/registerurl": ("POST", ("400.003.01", 400)),
            "/mpesa/c2b/v2/registerurl": ("POST", ("400.003.01", 400)),
            "/mpesa/c2b/v1/simulate": ("POST", ("400.003.01", 400)),
            "/mpesa/c2b/v2/simulate": ("POST", ("400.003.01", 400)),
            "/mpesa/transactionstatus/v1/query": ("POST", ("400.003.01", 400)),
        }
        if route not in routes:
            raise DarajaError(404, "404.001.01", "Resource not found")
        wanted, token_error = routes[route]
        if method != wanted:
            raise DarajaError(405, "405.001", "Method Not Allowed")
        if token_error is None:
            return sim.oauth(parse_qs(query), self.headers)
        sim._check_bearer(self.headers, *token_error)
        if "json" not in (self.headers.get("Content-Type") or ""):
            # what Daraja really answers when Content-Type is missing (daraja.md §1)
            raise DarajaError(400, "400.002.02", "Bad Request - Invalid BusinessShortCode")
        if not isinstance(body, dict):
            raise DarajaError(400, "400.002.05", "Invalid Request Payload")
        if route == "/mpesa/stkpush/v1/processrequest":
            return sim.stk_push(body)
        if route == "/mpesa/stkpushquery/v1/query":
            return sim.stk_query(body)
        if route.endswith("/simulate"):
            return sim.simulate_c2b(body)
        if route.startswith("/mpesa/c2b/"):
            return sim.register_urls(body, route.split("/")[3])
        return sim.transaction_status(body)


__all__ = ["STK_OUTCOMES", "DarajaError", "DarajaSimulator", "stk_password"]
