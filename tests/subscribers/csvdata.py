"""CSV files for the import tests, made in code so their size and content are plain."""

import csv
import io

PLANS_HEADER = ["name", "price", "cycle", "download", "upload", "service", "billing"]
PLANS = [
    ["Home 10", "2500", "monthly", "10M", "5M", "pppoe", "prepaid"],
    ["Home 20", "3500.50", "monthly", "20M", "10M", "pppoe", "postpaid"],
    ["Hotspot Day", "50", "daily", "5M", "2M", "hotspot", "prepaid"],
]
SUBSCRIBERS_HEADER = [
    "account",
    "name",
    "phone",
    "email",
    "plan",
    "username",
    "password",
    "router",
    "status",
    "expires",
]
ROUTER = "core-1"
EXPIRES = "2030-01-15"
# Seven in ten active, two suspended, one a lead: a mix like an ISP's real book.
STATUS_CYCLE = ["active"] * 7 + ["suspended"] * 2 + ["lead"]


def to_csv(header: list[str], rows: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def plans_csv(rows: list[list[str]] | None = None) -> str:
    return to_csv(PLANS_HEADER, PLANS if rows is None else rows)


def phone(i: int) -> str:
    """A valid Kenyan mobile number written the local way, 07xxxxxxxx, unique per i."""
    return f"07{12_000_000 + i:08d}"


def account(i: int) -> str:
    return f"IMP{i:05d}"


def username(i: int) -> str:
    return f"user{i:05d}"


def password(i: int) -> str:
    return f"pw-{i}-Secret!"


def status(i: int) -> str:
    return STATUS_CYCLE[i % len(STATUS_CYCLE)]


def subscriber_row(i: int, **overrides) -> list[str]:
    """Row i of a good file; a lead has no login yet and no expiry."""
    row = {
        "account": account(i),
        "name": f"Subscriber {i}",
        "phone": phone(i),
        "email": f"sub{i}@example.com" if i % 3 else "",
        "plan": PLANS[i % 2][0],
        "username": username(i),
        "password": password(i),
        "router": ROUTER,
        "status": status(i),
        "expires": EXPIRES,
    }
    if row["status"] == "lead":
        row.update(username="", password="", router="", expires="")
    row.update(overrides)
    return [row[c] for c in SUBSCRIBERS_HEADER]


def subscribers_csv(count: int, *, blank_accounts: int = 0, start: int = 0) -> str:
    """A good file of `count` rows; the first `blank_accounts` leave the account empty so
    the import numbers them from the ISP's pattern."""
    rows = []
    for i in range(start, start + count):
        row = subscriber_row(i)
        if i - start < blank_accounts:
            row[0] = ""
        rows.append(row)
    return to_csv(SUBSCRIBERS_HEADER, rows)
