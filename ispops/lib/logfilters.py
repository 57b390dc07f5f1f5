"""Logging filters. Safaricom calls back URLs whose path carries an ISP's secret token;
Django logs the path of every 4xx answer ("Bad Request: /payments/..."), and the
development server logs every request. The token never reaches a log file."""

import logging
import re

CALLBACK_TOKEN = re.compile(
    r"(/payments/(?:c2b/validation|c2b/confirmation|stk/callback)/)[^/\s\"']+"
)


def redact(text: str) -> str:
    return CALLBACK_TOKEN.sub(r"\1[token]", text)


class RedactCallbackTokens(logging.Filter):
    """Replace the token in callback paths in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            args = record.args.items()
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args}
        return True
