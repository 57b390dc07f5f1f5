"""From the database's desired state to the router, and back to check it.

Every service account that has a router maps to one item there: a PPPoE account to a
/ppp/secret, a hotspot account to an /ip/hotspot/user, a static-IP account to a
/queue/simple; each plan to a /ppp/profile or hotspot user profile carrying its speeds.
What the item should look like follows from the account's status alone:

    active      present, enabled, address not in the suspended list
    suspended   present, disabled, session dropped, address in the suspended list
    otherwise   absent (leads not yet installed, terminated accounts)

So applying is idempotent and order-independent: whatever jobs ran before, the router
ends matching the database, and a second apply writes nothing. Every write is read
back; a router that did not apply it raises NotApplied.
"""

from dataclasses import dataclass, field

from django.conf import settings

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
# Many accounts at once: read whole menus; a few: ask for each by name.
BULK_READ_FROM = 40


class NotApplied(Exception):
    """The router answered, but reading back shows it did not make the change."""


def comment_for(account) -> str:
    return f"ispops:{account.pk} {account.customer.account}"


def account_marker(account_id) -> str:
    return f"ispops:{account_id}"


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
            "profile": account.plan.name,
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
    """One connection's view of a router: cached menu reads and the writes made."""

    def __init__(self, api):
        self.api = api
        self.writes = 0

    def path(self, menu):
        return self.api.path(*menu.strip("/").split("/"))

    def rows(self, menu, **where) -> list[dict]:
        from librouteros.query import Key

        path = self.path(menu)
        if not where:
            return list(path)
        conditions = [Key(k) == v for k, v in where.items()]
        return list(path.select().where(*conditions))

    def by_name(self, menu, names, key="name") -> dict[str, dict]:
        names = list(dict.fromkeys(n for n in names if n))
        if len(names) >= BULK_READ_FROM:
            wanted = set(names)
            return {str(r.get(key)): r for r in self.rows(menu) if str(r.get(key)) in wanted}
        found = {}
        for name in names:
            for row in self.rows(menu, **{key: name}):
                found[str(row.get(key))] = row
        return found

    def add(self, menu, **fields) -> str:
        self.writes += 1
        return self.path(menu).add(**fields)

    def update(self, menu, item_id, **fields):
        self.writes += 1
        self.path(menu).update(**{".id": item_id, **fields})

    def remove(self, menu, *item_ids):
        if item_ids:
            self.writes += 1
            self.path(menu).remove(*item_ids)


# --- profiles -------------------------------------------------------------------------


def ensure_profiles(session: RouterSession, plans) -> list[str]:
    """Each plan's PPP or hotspot profile exists with the plan's speeds."""
    done = []
    by_menu: dict[str, list[Plan]] = {}
    for plan in plans:
        if plan.service == ServiceType.PPPOE:
            by_menu.setdefault(PPP_PROFILE, []).append(plan)
        elif plan.service == ServiceType.HOTSPOT:
            by_menu.setdefault(HS_PROFILE, []).append(plan)
    for menu, menu_plans in by_menu.items():
        existing = session.by_name(menu, [p.name for p in menu_plans])
        for plan in menu_plans:
            wanted = {"name": plan.name, "rate-limit": rate_limit(plan)}
            if menu == PPP_PROFILE:
                wanted["comment"] = f"ispops plan {plan.pk}"
            row = existing.get(plan.name)
            if row is None:
                session.add(menu, **wanted)
                done.append(f"profile {plan.name} created")
            else:
                changed = differences(row, wanted)
                if changed:
                    session.update(menu, row[".id"], **changed)
                    done.append(f"profile {plan.name} updated")
        # Read back: the speeds are what subscribers pay for.
        after = session.by_name(menu, [p.name for p in menu_plans])
        for plan in menu_plans:
            row = after.get(plan.name)
            if row is None or str(row.get("rate-limit", "")) != rate_limit(plan):
                raise NotApplied(f"profile {plan.name} does not carry {rate_limit(plan)}")
    return done


# --- accounts -------------------------------------------------------------------------


def apply_accounts(session: RouterSession, accounts, router_id: int) -> dict[int, Outcome]:
    """Make router `router_id`'s items match these accounts' desired state; read back."""
    accounts = list(accounts)
    outcomes = {a.pk: Outcome(a.pk) for a in accounts}
    ensure_profiles(session, {a.plan for a in accounts if should_exist(a, router_id)})
    by_menu: dict[str, list] = {}
    for account in accounts:
        by_menu.setdefault(menu_for(account), []).append(account)
    for menu, menu_accounts in by_menu.items():
        current = session.by_name(menu, [key_for(a) for a in menu_accounts])
        for account in menu_accounts:
            row = current.get(key_for(account))
            _apply_one(session, menu, account, row, outcomes[account.pk], router_id)
        after = session.by_name(menu, [key_for(a) for a in menu_accounts])
        for account in menu_accounts:
            _verify(account, after.get(key_for(account)), router_id)
    _apply_sessions_and_lists(session, accounts, outcomes, router_id)
    return outcomes


def _apply_one(session, menu, account, row, outcome, router_id):
    if should_exist(account, router_id):
        wanted = desired_fields(account)
        if row is None:
            session.add(menu, **wanted)
            outcome.changes.append("created")
        else:
            changed = differences(row, wanted)
            if changed:
                session.update(menu, row[".id"], **changed)
                outcome.changes.append("updated " + ", ".join(sorted(changed)))
    elif row is not None and owner_of(row.get("comment")) == account.pk:
        # Only an item we made is removed; a same-named item of someone else is drift.
        session.remove(menu, row[".id"])
        outcome.changes.append("removed")


def _verify(account, row, router_id):
    if should_exist(account, router_id):
        if row is None:
            raise NotApplied(f"{key_for(account)} is still missing after adding it")
        left = differences(row, desired_fields(account))
        if left:
            raise NotApplied(f"{key_for(account)} still differs in {', '.join(sorted(left))}")
    elif row is not None and owner_of(row.get("comment")) == account.pk:
        raise NotApplied(f"{key_for(account)} is still on the router after removing it")


def _apply_sessions_and_lists(session, accounts, outcomes, router_id):
    """Suspended: session dropped and address listed; otherwise: address not listed."""
    listname = settings.SUSPENDED_ADDRESS_LIST
    listed = {}
    for row in session.rows(ADDRESS_LIST, list=listname):
        owner = owner_of(row.get("comment"))
        if owner is not None:
            listed.setdefault(owner, []).append(row)
    suspended = [a for a in accounts if a.status == Status.SUSPENDED and should_exist(a, router_id)]
    live_ppp = {
        str(r.get("name")): r
        for r in (
            session.rows(PPP_ACTIVE)
            if len(suspended) >= BULK_READ_FROM
            else [
                row
                for a in suspended
                if a.service == ServiceType.PPPOE
                for row in session.rows(PPP_ACTIVE, name=a.username)
            ]
        )
    }
    live_hs = {
        str(r.get("user")): r
        for a in suspended
        if a.service == ServiceType.HOTSPOT
        for r in session.rows(HS_ACTIVE, user=a.username)
    }
    for account in accounts:
        outcome = outcomes[account.pk]
        entries = listed.get(account.pk, [])
        if account in suspended:
            live = (
                live_ppp.get(account.username)
                if account.service == ServiceType.PPPOE
                else live_hs.get(account.username)
            )
            address = account.static_ip or (live or {}).get("address")
            if live is not None:
                menu = PPP_ACTIVE if account.service == ServiceType.PPPOE else HS_ACTIVE
                session.remove(menu, live[".id"])
                outcome.changes.append("session dropped")
            if address and not any(str(e.get("address")) == str(address) for e in entries):
                session.add(
                    ADDRESS_LIST, list=listname, address=str(address), comment=comment_for(account)
                )
                outcome.changes.append(f"{address} listed as suspended")
        elif entries:
            session.remove(ADDRESS_LIST, *[e[".id"] for e in entries])
            outcome.changes.append("removed from the suspended list")
