"""The Daraja client: OAuth, STK push and query, C2B URL registration, Transaction Status.

Quirks followed (shared/daraja.md): `expires_in` may be a string; a new token invalidates
the previous one, so one token per ISP is cached in Redis for every web worker and Celery
process, fetched under a lock, and dropped when Daraja calls it invalid; the Timestamp is
Nairobi time; a pending STK query answers HTTP 500 500.001.1001, which means "still
waiting", not failure; query codes are strings.
"""

import base64
import contextlib
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import redis
import requests
from django.conf import settings
from django.db import connection

log = logging.getLogger(__name__)

NAIROBI = ZoneInfo("Africa/Nairobi")
TIMEOUT = (5, 30)  # connect, read
EARLY_REFRESH = 120  # seconds before expiry that a cached token is renewed
INVALID_TOKEN_CODES = {"404.001.03", "400.003.01", "401.002.01", "401.003.01"}
PENDING_CODE = "500.001.1001"


class DarajaError(Exception):
    """Daraja refused or could not be reached; str() says why in one line."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None):
        super().__init__(message)
        self.code, self.status = code, status


@dataclass
class StkQueryResult:
    pending: bool
    result_code: str = ""
    result_desc: str = ""


def timestamp(now: datetime | None = None) -> str:
    return (now or datetime.now(NAIROBI)).astimezone(NAIROBI).strftime("%Y%m%d%H%M%S")


def password(shortcode: str, passkey: str, stamp: str) -> str:
    return base64.b64encode(f"{shortcode}{passkey}{stamp}".encode()).decode()


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=3, socket_connect_timeout=3)


class Daraja:
    """One ISP's Daraja app. `cfg` is its MpesaSettings."""

    def __init__(self, cfg, *, session: requests.Session | None = None):
        if not cfg.configured:
            raise DarajaError("M-Pesa is not configured for this ISP (see M-Pesa settings)")
        self.cfg = cfg
        self.base = cfg.base_url.rstrip("/")
        self.http = session or requests.Session()
        digest = hashlib.sha256(f"{self.base}|{cfg.consumer_key}".encode()).hexdigest()[:16]
        self.token_key = f"ispops:daraja:token:{connection.schema_name}:{digest}"

    # ---- OAuth ---------------------------------------------------------------------

    def token(self) -> str:
        """The shared token, fetched once for everyone when missing or about to expire."""
        try:
            store = _redis()
            cached = store.get(self.token_key)
            if cached:
                return cached.decode()
            # Only one process fetches: a second fetch would invalidate the first token.
            # Held longer than a fetch can take (connect + read timeouts).
            with store.lock(self.token_key + ":lock", timeout=60, blocking_timeout=40):
                cached = store.get(self.token_key)
                if cached:
                    return cached.decode()
                token, ttl = self._fetch_token()
                store.set(self.token_key, token, ex=max(ttl - EARLY_REFRESH, 30))
                return token
        except redis.exceptions.LockError:
            # Another process held the lock past its time: it has fetched by now.
            cached = _redis().get(self.token_key)
            if cached:
                return cached.decode()
            return self._fetch_token()[0]
        except redis.RedisError as exc:
            # Without Redis a token cannot be shared; fetch one for this call only.
            log.warning("daraja token cache unavailable (%s); fetching a token directly", exc)
            return self._fetch_token()[0]

    def forget_token(self) -> None:
        with contextlib.suppress(redis.RedisError):
            _redis().delete(self.token_key)

    def _fetch_token(self) -> tuple[str, int]:
        try:
            response = self.http.get(
                f"{self.base}/oauth/v1/generate",
                params={"grant_type": "client_credentials"},
                auth=(self.cfg.consumer_key, self.cfg.consumer_secret),
                timeout=TIMEOUT,
            )
        except requests.RequestException as exc:
            raise DarajaError(f"cannot reach Daraja at {self.base}: {_short(exc)}") from None
        data = _json(response)
        if response.status_code != 200 or not data.get("access_token"):
            raise DarajaError(
                "Daraja refused the consumer key and secret: "
                + (data.get("errorMessage") or f"HTTP {response.status_code}"),
                code=str(data.get("errorCode") or ""),
                status=response.status_code,
            )
        try:
            ttl = int(float(str(data.get("expires_in", "3599"))))  # "3599" or 3599
        except ValueError:
            ttl = 3599
        return str(data["access_token"]), ttl

    # ---- calls ---------------------------------------------------------------------

    def _post(self, path: str, body: dict) -> tuple[int, dict]:
        """POST with the shared token; a token Daraja calls invalid is dropped and the
        call made once more with a new one."""
        for attempt in (1, 2):
            try:
                response = self.http.post(
                    f"{self.base}{path}",
                    json=body,
                    headers={"Authorization": f"Bearer {self.token()}"},
                    timeout=TIMEOUT,
                )
            except requests.RequestException as exc:
                raise DarajaError(f"cannot reach Daraja at {self.base}: {_short(exc)}") from None
            data = _json(response)
            if str(data.get("errorCode")) in INVALID_TOKEN_CODES and attempt == 1:
                self.forget_token()
                continue
            return response.status_code, data
        return response.status_code, data  # pragma: no cover - loop always returns

    def _credentials(self) -> dict:
        stamp = timestamp()
        return {
            "BusinessShortCode": self.cfg.shortcode,
            "Password": password(self.cfg.shortcode, self.cfg.passkey, stamp),
            "Timestamp": stamp,
        }

    def stk_push(
        self, *, phone: str, amount: int, account_reference: str, callback_url: str, desc: str
    ) -> dict:
        """Send the prompt; returns Daraja's reply with MerchantRequestID and
        CheckoutRequestID, or raises DarajaError with Daraja's reason."""
        till = self.cfg.kind == "till"
        body = {
            **self._credentials(),
            "TransactionType": "CustomerBuyGoodsOnline" if till else "CustomerPayBillOnline",
            "Amount": int(amount),
            "PartyA": phone,
            "PartyB": self.cfg.party_b,
            "PhoneNumber": phone,
            "CallBackURL": callback_url,
            "AccountReference": account_reference[:12],
            "TransactionDesc": desc[:13],
        }
        status, data = self._post("/mpesa/stkpush/v1/processrequest", body)
        if status != 200 or str(data.get("ResponseCode")) != "0":
            raise _error("STK push refused", status, data)
        return data

    def stk_query(self, checkout_request_id: str) -> StkQueryResult:
        body = {**self._credentials(), "CheckoutRequestID": checkout_request_id}
        status, data = self._post("/mpesa/stkpushquery/v1/query", body)
        # The same code also means wrong credentials or an unknown merchant; only
        # "being processed" is the pending answer.
        message = str(data.get("errorMessage") or "").lower()
        if str(data.get("errorCode")) == PENDING_CODE and "being processed" in message:
            return StkQueryResult(pending=True)
        if status != 200 or "ResultCode" not in data:
            raise _error("STK query refused", status, data)
        return StkQueryResult(
            pending=False,
            result_code=str(data["ResultCode"]),
            result_desc=str(data.get("ResultDesc") or ""),
        )

    def register_c2b_urls(self, *, confirmation_url: str, validation_url: str) -> dict:
        body = {
            "ShortCode": self.cfg.shortcode,
            # If our validation URL does not answer in time, let the payment through:
            # refusing a customer's money because we were slow is worse.
            "ResponseType": "Completed",
            "ConfirmationURL": confirmation_url,
            "ValidationURL": validation_url,
        }
        status, data = self._post(f"/mpesa/c2b/{self.cfg.c2b_version}/registerurl", body)
        if status != 200 or str(data.get("ResponseCode")) != "0":
            raise _error("C2B URL registration refused", status, data)
        return data

    def transaction_status(
        self,
        *,
        receipt: str,
        initiator: str,
        security_credential: str,
        result_url: str,
        timeout_url: str,
    ) -> dict:
        body = {
            "Initiator": initiator,
            "SecurityCredential": security_credential,
            "CommandID": "TransactionStatusQuery",
            "TransactionID": receipt,
            "PartyA": self.cfg.shortcode,
            "IdentifierType": "4",
            "ResultURL": result_url,
            "QueueTimeOutURL": timeout_url,
            "Remarks": "Status",
            "Occasion": receipt,
        }
        status, data = self._post("/mpesa/transactionstatus/v1/query", body)
        if status != 200 or str(data.get("ResponseCode")) != "0":
            raise _error("Transaction status refused", status, data)
        return data


def _json(response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error(what: str, status: int, data: dict) -> DarajaError:
    reason = data.get("errorMessage") or data.get("ResponseDescription") or f"HTTP {status}"
    code = str(data.get("errorCode") or data.get("ResponseCode") or "")
    message = f"{what}: {reason}" + (f" ({code})" if code else "")
    return DarajaError(message, code=code, status=status)


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) < 160 else text[:157] + "..."
