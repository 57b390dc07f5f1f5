"""From the database's desired state to the router, and back to check it.

Every service account that has a router maps to one item there: a PPPoE account to a
/ppp/secret, a hotspot account to an /ip/hotspot/user, a static-IP account to a
/queue/simple; each plan to a /ppp/profile or hotspot user profile carrying its speeds.
What the item should look like follows from the account's status alone:

    active      present, enabled, address not in the suspended list
    suspended   present, disabled, session dropped, address in the suspended list
    otherwise   absent (leads not yet installed, terminated accounts)

A PPPoE secret names its plan's profile, or the plan's fair-usage one while the account
is over its data allowance (network.fup); a secret whose profile changes has its live
session dropped, since a session keeps the profile it connected with.

So applying is idempotent and order-independent: whatever jobs ran before, the router
ends matching the database, and a second apply writes nothing. Every write is read
back; a router that did not apply it raises NotApplied.
"""

import time
from dataclasses import dataclass, field

from django.conf import settings
from librouteros.exceptions import TrapError
from librouteros.query import Key

from subscribers.models import Plan, ServiceAccount, ServiceType
from subscribers.services import format_speed

Status = ServiceAccount.Status
PPP_SECRET, PPP_PROFILE, PPP_ACTIVE = "/ppp/secret", "/ppp/profile", "/ppp/active"
HS_USER, HS_PROFILE, HS_ACTIVE = (
    "/ip/hotspot/user",
    "/ip/hotspot/user/profile",
    ("/ip/hotspot/active"),
)
QUEUE, ADDRESS_LIST = "/queue/simple", "/ip/firewall/address-list"
# Many accounts at once: read the whole table once, unless it has more than
# BULK_READ_RATIO rows per account (then a job would cost reads that grow with the
# table); otherwise ask the router for each item by name (the query runs on the
# router). One read saves a round trip per account, which is what a far router costs.
BULK_READ_FROM = 40
BULK_READ_RATIO = 20
# How long a connection trusts a plan profile it has checked (see ensure_profiles).
PROFILE_TRUSTED_SECONDS = 60.0
# The fields read back from each menu: what desired_fields compares, and the `.id`.
ITEM_PROPS = {
    PPP_SECRET: (".id", "name", "password", "service", "profile", "comment", "disabled",
                 "remote-address"),
    HS_USER: (".id", "name", "password", "profile", "comment", "disabled"),
    QUEUE: (".id", "name", "target", "max-limit", "comment", "disabled"),
}  # fmt: skip
PROFILE_PROPS = (".id", "name", "rate-limit", "comment")
LIST_PROPS = (".id", "address", "comment")


class NotApplied(Exception):
    """The router answered, but reading back shows it did not make the change."""


def comment_for(account) -> str:
    return f"ispops:{account.pk} {account.customer.account}"


def account_marker(account_id) -> str:
    return f"ispops:{account_id}"


# Items another part of ispops keeps on the router (the hotspot business's logins and
# walled garden, comments "ispops-hs:..."): they have their own sync and checks, so
# drift leaves them alone rather than calling a paying hotspot login unbilled.
OWNED_ELSEWHERE = "ispops-"


def owned_elsewhere(comment) -> bool:
    return str(comment or "").startswith(OWNED_ELSEWHERE)


def owner_of(comment) -> int | None:
    """The service account id an item's comment names (what we wrote), if any."""
    text = str(comment or "")
    if text.startswith("ispops:"):
        head = text[7:].split(" ", 1)[0]
        if head.isdigit():
            return int(head)
    return None


def rate_limit(plan: Plan) -> str:
    """RouterOS rate-limit, seen from the router: rx (client upload) / tx (download)."""
    base = f"{format_speed(plan.upload_kbps)}/{format_speed(plan.download_kbps)}"
    if plan.burst_download_kbps or plan.burst_upload_kbps:
        burst_up = plan.burst_upload_kbps or plan.upload_kbps
        burst_down = plan.burst_download_kbps or plan.download_kbps
        # Bursting is allowed while the average stays under 3/4 of the base rate.
        threshold = (
            f"{format_speed(plan.upload_kbps * 3 // 4)}/{format_speed(plan.download_kbps * 3 // 4)}"
        )
        seconds = plan.burst_seconds
        base += (
            f" {format_speed(burst_up)}/{format_speed(burst_down)} {threshold} {seconds}/{seconds}"
        )
    return base


def max_limit_bits(plan: Plan) -> str:
    """Simple queue max-limit as the router prints it: upload/download in bit/s."""
    return f"{plan.upload_kbps * 1000}/{plan.download_kbps * 1000}"


# --- fair use (network.fup) ------------------------------------------------------------
# A PPPoE account over a threshold of its plan's fair-usage ladder gets the profile of
# that step (names: network.fup): slowed to the step's speeds, or "capped" (blocked
# until a top-up). The capped profile puts the session's address in the suspended
# list, which the PPPoE walled garden sends to the pay page, and allows 64 kbit/s, so
# the line stays useless where that garden's rules are not on the router yet (and the
# portal still loads where they are).
CAPPED_RATE = "64k/64k"


def _step(account):
    """The ladder step the account is on (network.fup.Step), or None at full speed. A
    ladder shortened since the step was claimed gives its last step until evaluate
    moves the account."""
    from network import fup

    number = fup.step_of(account)
    if number == 0:
        return None
    steps = getattr(account, "_fup_ladder", None)
    if steps is None:
        steps = fup.ladder(account.plan)
    return steps[min(number, len(steps)) - 1] if steps else None


def profile_for(account) -> str:
    """The PPP profile a PPPoE account's secret names: its plan's, or that of the plan's
    fair-usage step it is on (network.fup.step_of)."""
    step = _step(account)
    return account.plan.name if step is None else step.profile


def fup_profiles(accounts) -> dict[str, dict]:
    """{profile name: the fields it must have} for the fair-usage profiles these
    accounts name (none for accounts at full speed); rate-limit as the router reads it,
    rx (client upload) / tx (download), as rate_limit."""
    wanted = {}
    for account in accounts:
        step = _step(account)
        if step is None:
            continue
        plan = account.plan
        if step.blocks:
            wanted[step.profile] = {
                "name": step.profile,
                "rate-limit": CAPPED_RATE,
                "address-list": settings.SUSPENDED_ADDRESS_LIST,
                "comment": f"ispops capped {plan.pk}",
            }
        else:
            rate = f"{format_speed(step.upload_kbps)}/{format_speed(step.download_kbps)}"
            wanted[step.profile] = {
                "name": step.profile,
                "rate-limit": rate,
                "comment": f"ispops fup {plan.pk}",
            }
    return wanted


def annotate_levels(accounts) -> None:
    """Read the fair-usage step of many PPPoE accounts in one query, and the ladders of
    the plans of those not at full speed in one more (profile_for then asks nothing)."""
    from network import fup
    from network.models import FupLevel, FupStep, UsageMeter

    ids = [a.pk for a in accounts if a.service == ServiceType.PPPOE]
    levels = {
        account_id: (level, step)
        for account_id, level, step in UsageMeter.objects.filter(
            service_account_id__in=ids
        ).values_list("service_account_id", "fup_level", "fup_step")
    }
    limited = [a for a in accounts if levels.get(a.pk, (None, 0))[1]]
    rows: dict[int, list] = {}
    if limited:
        for row in FupStep.objects.filter(plan_id__in={a.plan_id for a in limited}):
            rows.setdefault(row.plan_id, []).append(row)
    for account in accounts:
        if account.service == ServiceType.PPPOE:
            account._fup_level, account._fup_step = levels.get(account.pk, (FupLevel.FULL, 0))
            if account._fup_step:
                account._fup_ladder = fup.ladder(account.plan, rows.get(account.plan_id, []))


def ensure_fup_profiles(session: "RouterSession", wanted: dict[str, dict]) -> list[str]:
    """The fair-usage profiles exist with these fields; read back."""
    if not wanted:
        return []
    props = (*PROFILE_PROPS, "address-list")
    existing = session.by_name(PPP_PROFILE, list(wanted), props=props)
    done = []
    for name, fields in wanted.items():
        row = existing.get(name)
        if row is None:
            session.add(PPP_PROFILE, **fields)
            done.append(f"profile {name} created")
        elif changed := differences(row, fields):
            session.update(PPP_PROFILE, row[".id"], **changed)
            done.append(f"profile {name} updated")
    after = session.by_name(PPP_PROFILE, list(wanted), props=props) if done else existing
    for name, fields in wanted.items():
        row = after.get(name)
        if row is None or differences(row, fields):
            raise NotApplied(f"profile {name} does not carry {fields['rate-limit']}")
    return done


def menu_for(account) -> str:
    return {ServiceType.PPPOE: PPP_SECRET, ServiceType.HOTSPOT: HS_USER, ServiceType.STATIC: QUEUE}[
        account.service
    ]


def key_for(account) -> str:
    """The item's name on the router."""
    if account.service == ServiceType.STATIC:
        return f"ispops-{account.pk}"
    return account.username


def should_exist(account, router_id=None) -> bool:
    """Whether the account's item belongs on the router (`router_id`: the router being
    applied; an account another router serves is absent here)."""
    if router_id is not None and account.router_id != router_id:
        return False
    if account.status not in (Status.ACTIVE, Status.SUSPENDED):
        return False
    if account.service == ServiceType.STATIC:
        return bool(account.static_ip)
    return bool(account.username)


def desired_fields(account) -> dict:
    """The item as it should be printed by the router (strings, as on the wire)."""
    # A soft suspension keeps the login (the walled garden shows the pay page).
    hard = account.status == Status.SUSPENDED and account.suspension != "soft"
    disabled = "true" if hard else "false"
    if account.service == ServiceType.PPPOE:
        item = {
            "name": account.username,
            "password": account.password or "",
            "service": "pppoe",
            "profile": profile_for(account),
            "comment": comment_for(account),
            "disabled": disabled,
        }
        if account.static_ip:
            item["remote-address"] = account.static_ip
        return item
    if account.service == ServiceType.HOTSPOT:
        return {
            "name": account.username,
            "password": account.password or "",
            "profile": account.plan.name,
            "comment": comment_for(account),
            "disabled": disabled,
        }
    return {
        "name": key_for(account),
        "target": f"{account.static_ip}/32",
        "max-limit": max_limit_bits(account.plan),
        "comment": comment_for(account),
        "disabled": "false",
    }


def as_wire(value) -> str:
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def differences(current: dict, wanted: dict) -> dict:
    """The fields of `wanted` that `current` (a printed row) does not match."""
    changed = {}
    for key, value in wanted.items():
        have = as_wire(current.get(key, ""))
        if key == "target":
            have = have if "/" in have else f"{have}/32"
        if have != value:
            changed[key] = value
    return changed


@dataclass
class Outcome:
    """What applying did to one account's item."""

    account_id: int
    changes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def summary(self) -> str:
        return self.error or ("; ".join(self.changes) if self.changes else "already in place")


class RouterSession:
    """One connection's view of a router: targeted reads, the writes made, and `cache`,
    what this connection already knows (kept by a pooled connection between batches)."""

    def __init__(self, api, cache=None):
        self.api = api
        self.writes = 0
        self.cache = cache if cache is not None else {}

    def path(self, menu):
        return self.api.path(*menu.strip("/").split("/"))

    def rows(self, menu, props=(), **where) -> list[dict]:
        """Rows of `menu` (only `props` if given) whose fields equal `where`: the query
        runs on the router, so only matching rows cross the wire."""
        path = self.path(menu)
        if not where and not props:
            return list(path)
        conditions = [Key(k) == v for k, v in where.items()]
        query = path.select(*[Key(p) for p in props])
        return list(query.where(*conditions) if conditions else query)

    def count(self, menu, **where) -> int:
        words = [f"?={k}={v}" for k, v in where.items()]
        reply = list(self.api.rawCmd(f"{menu}/print", "=count-only=", *words))
        return int(reply[0].get("ret", 0)) if reply else 0

    def read_whole(self, menu, wanted: int, **where) -> bool:
        """Whether one read of the whole table (or the part `where` selects) beats one
        query per item: only for many items out of a table not much bigger than them."""
        if wanted < BULK_READ_FROM:
            return False
        return self.count(menu, **where) <= wanted * BULK_READ_RATIO

    def by_name(self, menu, names, key="name", props=()) -> dict[str, dict]:
        names = list(dict.fromkeys(n for n in names if n))
        if not names:
            return {}
        if self.read_whole(menu, len(names)):
            wanted = set(names)
            return {
                str(r.get(key)): r
                for r in self.rows(menu, props=props)
                if str(r.get(key)) in wanted
            }
        found = {}
        for name in names:
            for row in self.rows(menu, props=props, **{key: name}):
                found[str(row.get(key))] = row
        return found

    def add(self, menu, **fields) -> str:
        self.writes += 1
        return self.path(menu).add(**fields)

    def add_unless_present(self, menu, **fields) -> bool:
        """Add an item whose unique key may already be there (an address-list entry):
        the router's own uniqueness check decides, so nothing is read first. False when
        it was there."""
        try:
            self.add(menu, **fields)
        except TrapError as exc:
            if "already have such" in str(exc.message):
                return False
            raise
        return True

    def update(self, menu, item_id, **fields):
        self.writes += 1
        self.path(menu).update(**{".id": item_id, **fields})

    def remove(self, menu, *item_ids):
        if item_ids:
            self.writes += 1
            self.path(menu).remove(*item_ids)


# --- profiles -------------------------------------------------------------------------


def ensure_profiles(session: RouterSession, plans, *, recheck: bool = False) -> list[str]:
    """Each plan's PPP or hotspot profile exists with the plan's speeds. A profile this
    connection checked in the last PROFILE_TRUSTED_SECONDS is not read again (a burst of
    suspensions would otherwise read it once per job), unless `recheck`; the plan's
    speeds are part of what was checked, so a changed plan is always looked at."""
    done = []
    checked = session.cache.setdefault("profiles", {})
    now = time.monotonic()
    by_menu: dict[str, list[Plan]] = {}
    for plan in plans:
        menu = {ServiceType.PPPOE: PPP_PROFILE, ServiceType.HOTSPOT: HS_PROFILE}.get(plan.service)
        if menu is None:
            continue
        seen = checked.get((menu, plan.name))
        fresh = seen and seen[0] == rate_limit(plan) and now - seen[1] < PROFILE_TRUSTED_SECONDS
        if recheck or not fresh:
            by_menu.setdefault(menu, []).append(plan)
    for menu, menu_plans in by_menu.items():
        existing = session.by_name(menu, [p.name for p in menu_plans], props=PROFILE_PROPS)
        written = False
        for plan in menu_plans:
            wanted = {"name": plan.name, "rate-limit": rate_limit(plan)}
            if menu == PPP_PROFILE:
                wanted["comment"] = f"ispops plan {plan.pk}"
            row = existing.get(plan.name)
            if row is None:
                session.add(menu, **wanted)
                done.append(f"profile {plan.name} created")
                written = True
            else:
                changed = differences(row, wanted)
                if changed:
                    session.update(menu, row[".id"], **changed)
                    done.append(f"profile {plan.name} updated")
                    written = True
        # Read back what was written: the speeds are what subscribers pay for.
        after = (
            session.by_name(menu, [p.name for p in menu_plans], props=PROFILE_PROPS)
            if written
            else existing
        )
        for plan in menu_plans:
            row = after.get(plan.name)
            if row is None or str(row.get("rate-limit", "")) != rate_limit(plan):
                raise NotApplied(f"profile {plan.name} does not carry {rate_limit(plan)}")
            checked[(menu, plan.name)] = (rate_limit(plan), time.monotonic())
    return done


# --- accounts -------------------------------------------------------------------------


def apply_accounts(
    session: RouterSession, accounts, router_id: int, *, recheck_profiles: bool = False
) -> dict[int, Outcome]:
    """Make router `router_id`'s items match these accounts' desired state; read back
    what was written."""
    accounts = list(accounts)
    outcomes = {a.pk: Outcome(a.pk) for a in accounts}
    annotate_levels(accounts)
    ensure_profiles(
        session,
        {a.plan for a in accounts if should_exist(a, router_id)},
        recheck=recheck_profiles,
    )
    ensure_fup_profiles(session, fup_profiles([a for a in accounts if should_exist(a, router_id)]))
    reprofiled = []
    by_menu: dict[str, list] = {}
    for account in accounts:
        by_menu.setdefault(menu_for(account), []).append(account)
    old_comments: dict[int, str] = {}
    for menu, menu_accounts in by_menu.items():
        props = ITEM_PROPS[menu]
        current = session.by_name(menu, [key_for(a) for a in menu_accounts], props=props)
        written = []
        for account in menu_accounts:
            row = current.get(key_for(account))
            if _apply_one(session, menu, account, row, outcomes[account.pk], router_id):
                written.append(account)
                if (
                    menu == PPP_SECRET
                    and row is not None
                    and "profile" in differences(row, desired_fields(account))
                ):
                    reprofiled.append(account)
            comment = str((row or {}).get("comment", ""))
            if owner_of(comment) == account.pk and comment != comment_for(account):
                old_comments[account.pk] = comment
        # Only what was written is read back: the rest was just read.
        after = session.by_name(menu, [key_for(a) for a in written], props=props)
        for account in written:
            _verify(account, after.get(key_for(account)), router_id)
    _apply_sessions_and_lists(session, accounts, outcomes, router_id, old_comments)
    _drop_reprofiled(session, reprofiled, outcomes)
    return outcomes


def _drop_reprofiled(session, accounts, outcomes) -> None:
    """A PPP session keeps the profile it connected with: a live session of a secret
    whose profile changed (a fair-usage level, a plan) is dropped, and the subscriber's
    device redials on the new profile within seconds. Suspended ones already were."""
    accounts = [a for a in accounts if a.status == Status.ACTIVE]
    live = session.by_name(PPP_ACTIVE, [a.username for a in accounts], props=(".id", "name"))
    for account in accounts:
        row = live.get(account.username)
        if row is not None:
            session.remove(PPP_ACTIVE, row[".id"])
            outcomes[account.pk].changes.append("session dropped for the new profile")


def _apply_one(session, menu, account, row, outcome, router_id) -> bool:
    """Write what differs; True if something was written."""
    if should_exist(account, router_id):
        wanted = desired_fields(account)
        if row is None:
            session.add(menu, **wanted)
            outcome.changes.append("created")
            return True
        changed = differences(row, wanted)
        if changed:
            session.update(menu, row[".id"], **changed)
            outcome.changes.append("updated " + ", ".join(sorted(changed)))
            return True
    elif row is not None and owner_of(row.get("comment")) == account.pk:
        # Only an item we made is removed; a same-named item of someone else is drift.
        session.remove(menu, row[".id"])
        outcome.changes.append("removed")
        return True
    return False


def _verify(account, row, router_id):
    if should_exist(account, router_id):
        if row is None:
            raise NotApplied(f"{key_for(account)} is still missing after adding it")
        left = differences(row, desired_fields(account))
        if left:
            raise NotApplied(f"{key_for(account)} still differs in {', '.join(sorted(left))}")
    elif row is not None and owner_of(row.get("comment")) == account.pk:
        raise NotApplied(f"{key_for(account)} is still on the router after removing it")


def _apply_sessions_and_lists(session, accounts, outcomes, router_id, old_comments):
    """Suspended: address listed, then the session dropped; otherwise: address not listed.

    Many accounts out of a short list: the list is read once. Otherwise each account's
    entries are asked for by its comment (what we wrote), so a job costs the same however
    many subscribers are suspended."""
    listname = settings.SUSPENDED_ADDRESS_LIST
    suspended = [a for a in accounts if a.status == Status.SUSPENDED and should_exist(a, router_id)]
    suspended_ids = {a.pk for a in suspended}
    listed = None
    if session.read_whole(ADDRESS_LIST, len(accounts), list=listname):
        listed = {}
        for row in session.rows(ADDRESS_LIST, props=LIST_PROPS, list=listname):
            owner = owner_of(row.get("comment"))
            if owner is not None:
                listed.setdefault(owner, []).append(row)
    live_ppp = session.by_name(
        PPP_ACTIVE,
        [a.username for a in suspended if a.service == ServiceType.PPPOE],
        props=(".id", "name", "address"),
    )
    live_hs = session.by_name(
        HS_ACTIVE,
        [a.username for a in suspended if a.service == ServiceType.HOTSPOT],
        key="user",
        props=(".id", "user", "address"),
    )
    for account in accounts:
        outcome = outcomes[account.pk]
        if account.pk in suspended_ids:
            live = (live_ppp if account.service == ServiceType.PPPOE else live_hs).get(
                account.username
            )
            address = str(account.static_ip or (live or {}).get("address") or "")
            # Listed before the session drops, so a reconnection is already walled in.
            entries = (listed or {}).get(account.pk, [])
            known = any(str(e.get("address")) == address for e in entries)
            if address and not known:
                fields = {"list": listname, "address": address, "comment": comment_for(account)}
                if session.add_unless_present(ADDRESS_LIST, **fields):
                    outcome.changes.append(f"{address} listed as suspended")
            if live is not None:
                menu = PPP_ACTIVE if account.service == ServiceType.PPPOE else HS_ACTIVE
                session.remove(menu, live[".id"])
                outcome.changes.append("session dropped")
            continue
        if listed is not None:
            entries = listed.get(account.pk, [])
        else:
            entries = _entries_of(session, account, listname, old_comments.get(account.pk))
        if entries:
            session.remove(ADDRESS_LIST, *[e[".id"] for e in entries])
            outcome.changes.append("removed from the suspended list")


def _entries_of(session, account, listname, old_comment=None) -> list[dict]:
    """The account's entries in the suspended list, found by the comment we wrote (and
    the one written before the customer's account number changed, if it did)."""
    rows = []
    for comment in dict.fromkeys(c for c in (comment_for(account), old_comment) if c):
        rows += session.rows(ADDRESS_LIST, props=(".id",), list=listname, comment=comment)
    return rows
