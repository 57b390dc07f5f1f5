"""CSV imports through the real commands: all rows or none, every bad row named with its
line number, a 10,000-row file in one go, and the other per-ISP commands of the contract."""

import io
import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from ispops.audit.models import AuditEntry
from network import services as network_services
from network.models import Router
from subscribers import services
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import (
    Customer,
    Plan,
    ServiceAccount,
    StatusChange,
    SubscriberSettings,
)
from tests.subscribers import csvdata

NAIROBI = ZoneInfo("Africa/Nairobi")


@pytest.fixture
def catalogue(in_alpha):
    """alpha with the test plans (imported) and the router the files name."""
    report = import_plans(csvdata.plans_csv(), actor="test")
    assert report.ok, report.errors
    network_services.add_router(
        actor="test",
        name=csvdata.ROUTER,
        host="127.0.0.1",
        port=8728,
        username="api",
        password="router-secret",
    )
    return in_alpha


def write(tmp_path, text: str, name: str = "file.csv") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def run(command: str, *args) -> tuple[str, str]:
    """Run a per-ISP command on alpha as an operator would; (stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    call_command(command, "--schema", "alpha", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(command: str, *args) -> tuple[str, str]:
    """Run a command that must fail; (the one-line reason, what it printed on stderr)."""
    err = io.StringIO()
    with pytest.raises(CommandError) as exc:
        call_command(command, "--schema", "alpha", *args, stdout=io.StringIO(), stderr=err)
    return str(exc.value), err.getvalue()


def printed_errors(stderr: str) -> dict[int, str]:
    """{line: reason} from the command's 'line N: reason' lines."""
    found = {}
    for text in stderr.splitlines():
        head, _, reason = text.partition(": ")
        assert head.startswith("line "), text
        found[int(head.removeprefix("line "))] = reason
    return found


def counts() -> tuple[int, int, int]:
    return Customer.objects.count(), ServiceAccount.objects.count(), StatusChange.objects.count()


# --- all rows or none ---------------------------------------------------------------


def test_a_bad_file_imports_nothing_and_names_every_bad_row(catalogue, tmp_path):
    services.create_customer(
        actor="test", account="OLD001", name="Old Customer", phone="0700000001"
    )
    before = counts()
    rows = [
        csvdata.subscriber_row(0),  # line 2: good
        csvdata.subscriber_row(1, plan="Platinum 1G"),  # line 3
        csvdata.subscriber_row(2, account=csvdata.account(0)),  # line 4: same as line 2
        csvdata.subscriber_row(3, account="old001"),  # line 5: an existing customer
        csvdata.subscriber_row(4, phone="07123"),  # line 6
        csvdata.subscriber_row(5),  # line 7: good
        csvdata.subscriber_row(6, username=csvdata.username(5)),  # line 8: same as line 7
        csvdata.subscriber_row(7, status="gone"),  # line 9
        csvdata.subscriber_row(8, router="edge-9"),  # line 10
    ]
    path = write(tmp_path, csvdata.to_csv(csvdata.SUBSCRIBERS_HEADER, rows))

    reason, stderr = refused("import_subscribers", path)

    assert reason == "7 bad row(s) in 9; nothing imported"
    errors = printed_errors(stderr)
    expected = {
        3: ["unknown plan 'Platinum 1G'"],
        4: ["duplicate account IMP00000 (also on line 2)"],
        5: ["duplicate account OLD001 (already exists)"],
        6: ["phone number", "'07123'"],
        8: ["duplicate username user00005 (also on line 7)"],
        9: ["status 'gone' must be active, suspended or lead"],
        10: ["unknown router 'edge-9'"],
    }
    assert set(errors) == set(expected)
    for line, fragments in expected.items():
        for fragment in fragments:
            assert fragment in errors[line], (line, errors[line])
    assert counts() == before


def test_every_reason_of_a_row_is_given_on_its_line(catalogue, tmp_path):
    rows = [csvdata.subscriber_row(0, plan="Nope", phone="hello", email="not-an-email")]
    path = write(tmp_path, csvdata.to_csv(csvdata.SUBSCRIBERS_HEADER, rows))

    _, stderr = refused("import_subscribers", path)

    reason = printed_errors(stderr)[2]
    assert "unknown plan 'Nope'" in reason
    assert "phone" in reason
    assert "invalid email 'not-an-email'" in reason


def test_a_missing_column_is_reported_on_line_1(catalogue, tmp_path):
    header = [c for c in csvdata.SUBSCRIBERS_HEADER if c not in ("phone", "status")]
    rows = [
        [
            v
            for c, v in zip(csvdata.SUBSCRIBERS_HEADER, csvdata.subscriber_row(0), strict=True)
            if c in header
        ]
    ]
    path = write(tmp_path, csvdata.to_csv(header, rows))
    before = counts()

    reason, stderr = refused("import_subscribers", path)

    assert printed_errors(stderr) == {1: "missing column(s): phone, status"}
    assert "nothing imported" in reason
    assert counts() == before


def test_the_functions_report_the_same_lines_as_the_command(catalogue):
    rows = [csvdata.subscriber_row(0), csvdata.subscriber_row(1, plan="Nope")]
    report = import_subscribers(
        csvdata.to_csv(csvdata.SUBSCRIBERS_HEADER, rows), actor="test", dry_run=False
    )
    assert not report.ok
    assert [(e["line"], e["reason"]) for e in report.errors] == [(3, "unknown plan 'Nope'")]
    assert report.created == 0
    assert not Customer.objects.filter(account=csvdata.account(0)).exists()


def test_a_file_that_is_not_utf8_is_refused_with_one_line(catalogue, tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes("account,name\nA1,Jos\xe9\n".encode("latin-1"))
    reason, _ = refused("import_subscribers", str(path))
    assert "is not UTF-8" in reason
    reason, _ = refused("import_subscribers", str(tmp_path / "missing.csv"))
    assert reason.startswith("no such file")


def test_dry_run_writes_nothing_but_counts_what_it_would_import(catalogue, tmp_path):
    path = write(tmp_path, csvdata.subscribers_csv(25))
    before = counts()
    seq = SubscriberSettings.load().next_account_seq

    out, _ = run("import_subscribers", path, "--dry-run")

    assert out.strip() == "would import 25 of 25 row(s)"
    assert counts() == before
    assert SubscriberSettings.load().next_account_seq == seq


# --- a big good file ------------------------------------------------------------------


def test_a_good_10000_row_file_imports_completely_and_fast(catalogue, tmp_path):
    SubscriberSettings.load()
    SubscriberSettings.objects.filter(pk=1).update(account_pattern="AL{seq:5}")
    total, blank = 10_000, 5
    path = write(tmp_path, csvdata.subscribers_csv(total, blank_accounts=blank))
    before = counts()
    audits_before = AuditEntry.objects.filter(changes__imported=True).count()

    started = time.perf_counter()
    out, _ = run("import_subscribers", path)
    elapsed = time.perf_counter() - started
    print(f"\nimported {total} subscribers in {elapsed:.2f} s")

    assert out.strip() == f"imported {total} of {total} row(s)"
    assert elapsed < 30
    assert counts() == (before[0] + total, before[1] + total, before[2] + total)
    expected = {s: 0 for s in ("active", "suspended", "lead")}
    for i in range(total):
        expected[csvdata.status(i)] += 1
    imported = ServiceAccount.objects.filter(customer__name__startswith="Subscriber ")
    by_status = {s: imported.filter(status=s).count() for s in expected}
    assert by_status == expected
    assert by_status["suspended"] > 0 and by_status["lead"] > 0
    assert (
        Customer.objects.filter(name__startswith="Subscriber ", status="active").count()
        == (expected["active"])
    )
    # Blank account cells were numbered from the ISP's pattern.
    generated = sorted(
        Customer.objects.filter(name__in=[f"Subscriber {i}" for i in range(blank)]).values_list(
            "account", flat=True
        )
    )
    assert generated == [f"AL{n:05d}" for n in range(1, blank + 1)]
    assert Customer.objects.get(name="Subscriber 9999").account == csvdata.account(9999)
    assert Customer.objects.get(name="Subscriber 42").phone == "254712000042"
    # Each account has its birth in the status history and the audit log.
    assert StatusChange.objects.filter(reason="Imported", from_status="").count() >= total
    assert AuditEntry.objects.filter(changes__imported=True).count() == audits_before + 2 * total
    sample = ServiceAccount.objects.select_related("router", "plan").get(
        username=csvdata.username(1)
    )
    assert sample.router.name == csvdata.ROUTER
    assert sample.plan.name == csvdata.PLANS[1][0]
    assert sample.status_changes.get().to_status == sample.status
    assert AuditEntry.objects.filter(
        model="subscribers.serviceaccount", object_id=str(sample.pk), action="create"
    ).exists()


def test_imported_passwords_are_stored_encrypted(catalogue, tmp_path):
    run("import_subscribers", write(tmp_path, csvdata.subscribers_csv(3)))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT password FROM subscribers_serviceaccount WHERE username = %s",
            [csvdata.username(1)],
        )
        (stored,) = cursor.fetchone()
    assert stored and stored != csvdata.password(1)
    assert csvdata.password(1) not in stored
    account = ServiceAccount.objects.get(username=csvdata.username(1))
    assert account.password == csvdata.password(1)


def test_expires_is_the_end_of_that_day_in_nairobi(catalogue, tmp_path):
    rows = [csvdata.subscriber_row(0, expires="2030-01-15")]
    run("import_subscribers", write(tmp_path, csvdata.to_csv(csvdata.SUBSCRIBERS_HEADER, rows)))
    expires = ServiceAccount.objects.get(username=csvdata.username(0)).expires_at
    assert expires == datetime(2030, 1, 15, 23, 59, 59, tzinfo=NAIROBI)
    assert expires.astimezone(ZoneInfo("UTC")).hour == 20


def test_an_account_taken_by_an_earlier_import_is_refused_on_a_second_run(catalogue, tmp_path):
    path = write(tmp_path, csvdata.subscribers_csv(3))
    run("import_subscribers", path)
    before = counts()

    _, stderr = refused("import_subscribers", path)

    errors = printed_errors(stderr)
    assert set(errors) == {2, 3, 4}
    assert all("already exists" in reason for reason in errors.values())
    assert counts() == before


# --- plans -----------------------------------------------------------------------------


def test_importing_the_same_plans_twice_changes_nothing_the_second_time(in_alpha, tmp_path):
    path = write(tmp_path, csvdata.plans_csv())
    before = Plan.objects.count()

    first, _ = run("import_plans", path)
    second, _ = run("import_plans", path)

    assert first.strip() == "imported 3 of 3 row(s)"
    assert second.strip() == "imported 0 of 3 row(s), 3 already there"
    assert Plan.objects.count() == before + 3
    plan = Plan.objects.get(name="Home 20")
    assert (plan.download_kbps, plan.upload_kbps, plan.billing) == (20_000, 10_000, "postpaid")
    assert str(plan.price) == "3500.50"


def test_a_plan_reimported_with_other_values_is_refused(in_alpha, tmp_path):
    run("import_plans", write(tmp_path, csvdata.plans_csv()))
    changed = [list(p) for p in csvdata.PLANS]
    changed[1][1] = "3999"
    before = list(Plan.objects.values_list("name", "price"))

    reason, stderr = refused("import_plans", write(tmp_path, csvdata.plans_csv(changed), "b.csv"))

    assert "nothing imported" in reason
    assert set(printed_errors(stderr)) == {3}
    assert "already exists with other values" in printed_errors(stderr)[3]
    assert list(Plan.objects.values_list("name", "price")) == before


def test_plans_without_billing_take_the_isp_default(in_alpha, tmp_path):
    SubscriberSettings.load()
    SubscriberSettings.objects.filter(pk=1).update(default_billing="postpaid")
    text = "name,price,cycle,download,upload,service\nBiz 50,9000,monthly,50M,50M,static\n"
    run("import_plans", write(tmp_path, text))
    assert Plan.objects.get(name="Biz 50").billing == "postpaid"


# --- account_status and add_router ---------------------------------------------------


def test_account_status_prints_one_line_of_json(catalogue, tmp_path):
    run("import_subscribers", write(tmp_path, csvdata.subscribers_csv(2)))

    out, _ = run("account_status", csvdata.account(1).lower())

    assert out.count("\n") <= 1
    status = json.loads(out)
    assert status["account"] == csvdata.account(1)
    assert status["balance"] == "0.00"
    assert status["expires_at"] == "2030-01-15T23:59:59+03:00"
    assert [(a["username"], a["status"]) for a in status["service_accounts"]] == [
        (csvdata.username(1), csvdata.status(1))
    ]


def test_account_status_of_an_unknown_account_fails_with_one_line(in_alpha):
    reason, _ = refused("account_status", "NOPE404")
    assert reason == "no customer with account NOPE404"
    assert "\n" not in reason


def test_add_router_refuses_a_duplicate_name(in_alpha):
    args = [
        "--name",
        "Core-2",
        "--host",
        "127.0.0.1",
        "--username",
        "api",
        "--password",
        "pw",
        "--no-check",
    ]
    out, _ = run("add_router", *args)
    assert "router Core-2 added (127.0.0.1:8728)" in out

    reason, _ = refused("add_router", "--name", "core-2", *args[2:])

    assert reason == "a router named 'core-2' already exists"
    assert Router.objects.filter(name__iexact="core-2").count() == 1
    stored = Router.objects.get(name="Core-2")
    assert stored.password == "pw"
