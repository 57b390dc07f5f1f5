"""Vouchers: printing batches of cards, their life (generated -> with an agent -> sold
-> redeemed, or expired / revoked) and the captive page's look-up of a typed code.

Codes come from `secrets` over an alphabet with no look-alikes (no 0 O 1 I L), so a
card read aloud or typed on a phone is not mistaken, and are unique in the ISP's
schema by the unique index on Voucher.code: a batch is inserted with ON CONFLICT DO
NOTHING and topped up until it has its count, so two batches generated at once never
share a code and neither fails.

Every change of state is a conditional UPDATE on the state it leaves, so a code
redeems once however many requests race, and a card revoked while being sold stays
revoked. The agent's ledger moves with the cards (hotspot.agents).
"""

import secrets
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from hotspot import agents
from hotspot.models import HotspotSettings, Package, Voucher, VoucherBatch
from ispops import audit
from ispops.lib.money import to_money
from ispops.lib.phones import InvalidPhone, normalise_phone

# 31 symbols: digits 2-9 and letters without I, L and O (0/O and 1/I/L look alike).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
# Hyphen-minus, hyphen, non-breaking hyphen, en and em dash: what phones type for "-".
DASHES = "-\u2010\u2011\u2013\u2014"
MAX_BATCH = 10_000
# Rounds of topping up before giving up: each round replaces the codes that another
# batch took meanwhile, so more than a few means the code space is nearly full.
MAX_ROUNDS = 20
SMS_TEMPLATE = "hotspot_voucher"

State = Voucher.State
# A printed card a buyer may still use (one with the agent counts: agents often sell
# without recording it, and the buyer holds the card).
USABLE = (State.GENERATED, State.ASSIGNED, State.SOLD)
UNSOLD = (State.GENERATED, State.ASSIGNED)
UNSOLD_NOT_WITH_AGENT = (State.GENERATED,)


class VoucherError(ValueError):
    """A voucher operation that cannot be done; str() says why, for the person asking."""


# --- codes --------------------------------------------------------------------------


def normalise_code(typed: str) -> str:
    """A code as stored: spaces and dashes removed, upper case ('abcd-efgh ' ->
    'ABCDEFGH'). Cards print codes in groups; people type them in any case."""
    return "".join(ch for ch in (typed or "") if not ch.isspace() and ch not in DASHES).upper()


def new_code(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def grouped(code: str) -> str:
    """'ABCDEFGH' -> 'ABCD EFGH' for reading off a card (normalise_code undoes it)."""
    return " ".join(code[i : i + 4] for i in range(0, len(code), 4))


# --- batches ------------------------------------------------------------------------


@transaction.atomic
def generate_batch(
    package: Package,
    count: int,
    price=None,
    *,
    site=None,
    agent=None,
    unsold_expire_at: datetime | None = None,
    commission_percent=0,
    note: str = "",
    actor,
) -> VoucherBatch:
    """A batch of `count` cards of `package` at `price` (default: the package's), each
    with a fresh code; with `agent`, the cards go to the agent at once (assign_batch)."""
    if not 1 <= count <= MAX_BATCH:
        raise VoucherError(f"a batch has 1 to {MAX_BATCH:,} cards, not {count}")
    price = to_money(package.price if price is None else price)
    if price < 0:
        raise VoucherError("the price cannot be negative")
    if unsold_expire_at is not None and unsold_expire_at <= timezone.now():
        raise VoucherError("the unsold cards' expiry must be in the future")
    if agent is not None:
        agents.check_agent(agent)
    length = HotspotSettings.load().code_length
    batch = VoucherBatch.objects.create(
        package=package,
        count=count,
        price=price,
        site=site,
        unsold_expire_at=unsold_expire_at,
        commission_percent=to_money(commission_percent),
        note=note,
        created_by=audit.describe_actor(actor)[1],
    )
    _insert_codes(batch, count, length)
    audit.record(
        batch,
        "create",
        {"package": str(package), "count": count, "price": str(price)},
        actor=actor,
    )
    if agent is not None:
        assign_batch(batch, agent, actor=actor)
    return batch


def _insert_codes(batch: VoucherBatch, count: int, length: int) -> None:
    """Insert `count` cards with unique codes. A code another batch holds (or is
    inserting right now, in its own transaction) is skipped by ON CONFLICT DO NOTHING,
    which waits for that transaction; the round then tops up what is missing."""
    have = 0
    for _ in range(MAX_ROUNDS):
        missing = count - have
        codes = set()
        while len(codes) < missing:
            codes.add(new_code(length))
        Voucher.objects.bulk_create(
            [Voucher(batch=batch, code=code) for code in codes],
            batch_size=2000,
            ignore_conflicts=True,
        )
        have = Voucher.objects.filter(batch=batch).count()
        if have == count:
            return
    raise VoucherError(
        f"could not find {count} free codes of {length} characters; make codes longer"
    )


def batches_for_agent(agent):
    return VoucherBatch.objects.filter(agent=agent)


@transaction.atomic
def assign_batch(batch: VoucherBatch, agent, *, actor) -> int:
    """Give a batch's unsold cards to `agent`: they become the agent's, and the agent's
    ledger is charged their price. A batch with an agent stays theirs. Returns the
    number of cards given."""
    agents.check_agent(agent)
    batch = VoucherBatch.objects.select_for_update().get(pk=batch.pk)
    if batch.revoked_at is not None:
        raise VoucherError("this batch is revoked")
    if batch.agent_id is not None and batch.agent_id != agent.pk:
        raise VoucherError(f"this batch is already with {batch.agent}")
    given = Voucher.objects.filter(batch=batch, state=State.GENERATED).update(state=State.ASSIGNED)
    if batch.agent_id is None:
        batch.agent = agent
        batch.save(update_fields=["agent"])
    if given:
        agents.charge_cards(agent, batch, given, actor=actor)
    audit.record(batch, "update", {"agent": [None, str(agent)], "cards": given}, actor=actor)
    return given


# --- selling ------------------------------------------------------------------------


@transaction.atomic
def sell(voucher: Voucher, *, phone: str = "", send_sms: bool = False, actor) -> Voucher:
    """Record a card as sold (by its batch's agent, or by staff over the counter),
    to `phone` if given; with `send_sms` the code goes to that phone. The agent earns
    the batch's commission."""
    buyer = _phone_or_error(phone) if phone or send_sms else ""
    if send_sms and not buyer:
        raise VoucherError("give the buyer's phone to send the code")
    now = timezone.now()
    voucher = Voucher.objects.select_related("batch__package").get(pk=voucher.pk)
    batch = voucher.batch
    if batch.revoked_at is not None or voucher.state == State.REVOKED:
        raise VoucherError("this card is revoked")
    if _expired_unsold(voucher, now):
        raise VoucherError("this card has expired unsold")
    was = voucher.state
    # No join in the conditional UPDATE (see mark_redeemed); expiry was checked above.
    sold = Voucher.objects.filter(pk=voucher.pk, state__in=UNSOLD).update(
        state=State.SOLD, sold_at=now, sold_to=buyer
    )
    if sold != 1:
        raise VoucherError(f"this card is already {voucher.get_state_display().lower()}")
    voucher.refresh_from_db()
    if was == State.ASSIGNED and batch.agent_id:
        agents.earn_commission(batch.agent, voucher, batch, actor=actor)
    audit.record(voucher, "update", {"state": [was, State.SOLD], "sold_to": buyer}, actor=actor)
    if send_sms:
        send_card_sms(voucher, buyer, actor=actor)
    return voucher


def _phone_or_error(phone: str) -> str:
    try:
        return normalise_phone(phone)
    except InvalidPhone as exc:
        raise VoucherError(str(exc)) from None


def send_card_sms(voucher: Voucher, phone: str, *, actor) -> None:
    """Queue an SMS with the card (code, package, price, link to the hotspot page) to
    `phone`; sent after the transaction commits. Only a card a buyer can still use."""
    from ispops.messaging import services as messaging
    from ispops.messaging.models import Channel, Message

    to = _phone_or_error(phone)
    voucher = Voucher.objects.select_related("batch__package").get(pk=voucher.pk)
    if voucher.state not in USABLE or voucher.batch.revoked_at is not None:
        raise VoucherError(f"this card is {voucher.get_state_display().lower()}")
    _, body = messaging.render(SMS_TEMPLATE, Channel.SMS, sms_context(voucher))
    messaging.queue_messages(
        [
            Message(
                channel=Channel.SMS,
                to=to,
                body=body,
                template_key=SMS_TEMPLATE,
                related=f"voucher:{voucher.pk}",
            )
        ]
    )
    audit.record(voucher, "update", {"sent_by_sms": to}, actor=actor)


def sms_context(voucher: Voucher) -> dict:
    package = voucher.batch.package
    return {
        "isp_name": getattr(connection.tenant, "name", ""),
        "code": voucher.code,
        "package": package.name,
        "validity": validity_text(package.validity_minutes),
        "amount": voucher.batch.price,
        "link": portal_link(voucher.code),
    }


def portal_link(code: str) -> str:
    """The hotspot page with the code filled in (the card's QR code opens it)."""
    host = getattr(connection.tenant, "primary_host", "") or "localhost"
    return f"https://{host}/hs/?code={code}"


def validity_text(minutes: int) -> str:
    """'30 minutes', '1 hour', '3 days', '1 day 6 hours' for cards and messages."""
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    parts = []
    for value, unit in ((days, "day"), (hours, "hour"), (mins, "minute")):
        if value:
            parts.append(f"{value} {unit}{'' if value == 1 else 's'}")
    return " ".join(parts[:2]) or "0 minutes"


# --- the captive page ---------------------------------------------------------------


class Refusal:
    UNKNOWN = "unknown"  # no such code
    USED = "used"  # already redeemed
    REVOKED = "revoked"
    EXPIRED = "expired"  # unsold past the batch's expiry
    ELSEWHERE = "elsewhere"  # not sold at this router (package routers, batch site)
    WITHDRAWN = "withdrawn"  # the package is no longer sold


@dataclass(frozen=True)
class Lookup:
    """find_redeemable's answer: a voucher that may be redeemed, or why not."""

    voucher: Voucher | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.voucher is not None and not self.reason


def find_redeemable(code: str, *, router=None, now: datetime | None = None) -> Lookup:
    """The voucher for a typed code if it may be redeemed (at `router`, if given), else
    Lookup(None or the voucher, reason). Redeem it with mark_redeemed, which checks
    again: this look-up is not a claim."""
    now = now or timezone.now()
    normal = normalise_code(code)
    if not normal or len(normal) > 16:
        return Lookup(None, Refusal.UNKNOWN)
    voucher = (
        Voucher.objects.select_related("batch__package", "batch__site").filter(code=normal).first()
    )
    if voucher is None:
        return Lookup(None, Refusal.UNKNOWN)
    batch = voucher.batch
    if voucher.state == State.REDEEMED:
        return Lookup(voucher, Refusal.USED)
    if voucher.state == State.REVOKED or batch.revoked_at is not None:
        return Lookup(voucher, Refusal.REVOKED)
    if voucher.state == State.EXPIRED or _expired_unsold(voucher, now):
        return Lookup(voucher, Refusal.EXPIRED)
    if not batch.package.is_active:
        return Lookup(voucher, Refusal.WITHDRAWN)
    if router is not None and not _sold_at(voucher, router):
        return Lookup(voucher, Refusal.ELSEWHERE)
    return Lookup(voucher)


def _sold_at(voucher: Voucher, router) -> bool:
    batch = voucher.batch
    if batch.site_id is not None and router.site_id != batch.site_id:
        return False
    routers = batch.package.routers.all()
    return not routers.exists() or routers.filter(pk=router.pk).exists()


def mark_redeemed(voucher: Voucher, at: datetime) -> bool:
    """Claim the card for one redemption: True for exactly one caller however many
    race (a conditional UPDATE on its state), False if it was redeemed, revoked or
    expired meanwhile. A card still with its agent counts as sold by them (they earn the
    commission). Call inside the transaction that makes the entitlement."""
    # The batch's conditions are read first: an UPDATE filtered through a join is run
    # by Django as "id IN (subquery)", whose state test a racing UPDATE does not redo.
    batch = VoucherBatch.objects.select_related("agent").get(pk=voucher.batch_id)
    if batch.revoked_at is not None:
        return False
    unsold_ok = batch.unsold_expire_at is None or batch.unsold_expire_at > at
    cards = Voucher.objects.filter(pk=voucher.pk)
    with transaction.atomic():
        if unsold_ok and cards.filter(state=State.ASSIGNED).update(
            state=State.REDEEMED, redeemed_at=at, sold_at=at
        ):
            voucher.refresh_from_db()
            if batch.agent_id:
                agents.earn_commission(batch.agent, voucher, batch, actor="hotspot redemption")
            return True
        states = (*UNSOLD_NOT_WITH_AGENT, State.SOLD) if unsold_ok else (State.SOLD,)
        if cards.filter(state__in=states).update(state=State.REDEEMED, redeemed_at=at):
            voucher.refresh_from_db()
            return True
    return False


# --- revoking and expiry ------------------------------------------------------------


@transaction.atomic
def revoke_voucher(voucher: Voucher, *, actor) -> None:
    """Withdraw one card not yet redeemed (lost, stolen). A card the agent had not
    sold goes back off their ledger."""
    voucher = Voucher.objects.select_related("batch__agent").get(pk=voucher.pk)
    was = voucher.state
    if not Voucher.objects.filter(pk=voucher.pk, state__in=USABLE).update(state=State.REVOKED):
        raise VoucherError(f"a card {voucher.get_state_display().lower()} cannot be revoked")
    batch = voucher.batch
    if was == State.ASSIGNED and batch.agent_id:
        agents.return_cards(batch.agent, batch, 1, why="card revoked", actor=actor)
    audit.record(voucher, "update", {"state": [was, State.REVOKED]}, actor=actor)


@transaction.atomic
def revoke_batch(batch: VoucherBatch, *, actor) -> int:
    """Withdraw every card of the batch not yet redeemed; returns how many. Cards the
    agent had not sold go back off their ledger."""
    batch = (
        VoucherBatch.objects.select_for_update(of=("self",))
        .select_related("agent")
        .get(pk=batch.pk)
    )
    if batch.revoked_at is not None:
        raise VoucherError("this batch is already revoked")
    cards = Voucher.objects.filter(batch=batch)
    unsold = cards.filter(state=State.ASSIGNED).update(state=State.REVOKED)
    others = cards.filter(state__in=(State.GENERATED, State.SOLD)).update(state=State.REVOKED)
    batch.revoked_at = timezone.now()
    batch.save(update_fields=["revoked_at"])
    if unsold and batch.agent_id:
        agents.return_cards(batch.agent, batch, unsold, why="batch revoked", actor=actor)
    audit.record(batch, "update", {"revoked": unsold + others}, actor=actor)
    return unsold + others


def expire_unsold(now: datetime | None = None) -> int:
    """Cards never sold past their batch's expiry become expired (the agent's go back
    off their ledger), one batch per transaction. Returns how many expired."""
    now = now or timezone.now()
    due = (
        VoucherBatch.objects.filter(unsold_expire_at__lte=now, revoked_at__isnull=True)
        .filter(vouchers__state__in=UNSOLD)
        .values_list("pk", flat=True)
        .distinct()
    )
    total = 0
    for pk in list(due):
        with transaction.atomic():
            batch = VoucherBatch.objects.select_related("agent").get(pk=pk)
            cards = Voucher.objects.filter(batch=batch)
            held = cards.filter(state=State.ASSIGNED).update(state=State.EXPIRED)
            spare = cards.filter(state=State.GENERATED).update(state=State.EXPIRED)
            if held and batch.agent_id:
                agents.return_cards(
                    batch.agent, batch, held, why="unsold cards expired", actor="hotspot expiry"
                )
            if held or spare:
                audit.record(batch, "update", {"expired": held + spare}, actor="hotspot expiry")
            total += held + spare
    return total


def _expired_unsold(voucher: Voucher, now: datetime) -> bool:
    expire_at = voucher.batch.unsold_expire_at
    return voucher.state in UNSOLD and expire_at is not None and expire_at <= now


# --- lists and exports --------------------------------------------------------------


def state_counts(batch: VoucherBatch) -> dict[str, int]:
    """{state: cards} for a batch, every state present (0 where none)."""
    from django.db.models import Count

    counts = dict.fromkeys(State.values, 0)
    for row in Voucher.objects.filter(batch=batch).values("state").annotate(n=Count("id")):
        counts[row["state"]] = row["n"]
    return counts


def csv_rows(batch: VoucherBatch):
    """The batch's cards as CSV rows (header first), for spreadsheets and printers."""
    yield ["code", "state", "package", "price", "batch", "sold_at", "sold_to", "redeemed_at"]
    fmt = "%Y-%m-%d %H:%M"
    for v in Voucher.objects.filter(batch=batch).order_by("id").iterator(chunk_size=2000):
        yield [
            v.code,
            v.state,
            batch.package.name,
            str(batch.price),
            str(batch.pk),
            timezone.localtime(v.sold_at).strftime(fmt) if v.sold_at else "",
            v.sold_to,
            timezone.localtime(v.redeemed_at).strftime(fmt) if v.redeemed_at else "",
        ]
