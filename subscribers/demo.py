"""Demo data for the subscribers app (seed_demo): plans, sites, routers, a few hundred
subscribers in every status and leads at every stage of the pipeline. Deterministic,
and safe to run again (what exists is kept)."""

import random
from datetime import timedelta

from django.utils import timezone

from ispops.staff.models import Branch, Role, User
from network.models import Router
from network.services import add_router
from subscribers import services
from subscribers.imports import import_plans, import_subscribers
from subscribers.models import (
    Customer,
    Installation,
    NetworkSite,
    Plan,
    ServiceAccount,
    StatusChange,
    SubscriberSettings,
)

PLANS_CSV = """name,price,cycle,download,upload,service,billing,data_cap_gb
Hotspot 1 Hour,10,hourly,2M,1M,hotspot,prepaid,
Hotspot Daily,50,daily,3M,1M,hotspot,prepaid,
Hotspot Weekly,300,weekly,3M,1M,hotspot,prepaid,
Lite 8M,1000,monthly,8M,2M,pppoe,prepaid,100
Home 5M,1500,monthly,5M,2M,pppoe,prepaid,
Home 10M,2500,monthly,10M,5M,pppoe,prepaid,
Home 20M,3500,monthly,20M,10M,pppoe,prepaid,
Fibre 50M,6000,monthly,50M,25M,pppoe,postpaid,
Business 100M,12000,monthly,100M,50M,static,postpaid,
"""
FIRST = [
    "Wanjiru",
    "Otieno",
    "Achieng",
    "Kamau",
    "Njeri",
    "Mwangi",
    "Atieno",
    "Kiprop",
    "Chebet",
    "Wafula",
    "Nafula",
    "Omondi",
    "Mutua",
    "Mumbua",
    "Kariuki",
    "Wambui",
    "Barasa",
    "Akinyi",
    "Kibet",
    "Nyambura",
    "Onyango",
    "Jepkosgei",
    "Muthoni",
    "Ochieng",
]
LAST = [
    "Kamau",
    "Odhiambo",
    "Mutiso",
    "Wekesa",
    "Njoroge",
    "Korir",
    "Ouma",
    "Kimani",
    "Maina",
    "Owino",
    "Cheruiyot",
    "Gitau",
    "Mwende",
    "Ndungu",
    "Kiplagat",
    "Awuor",
]
# The demo routers are RouterOS emulators that `make run` starts on these ports
# (scripts/run.sh reads them with `manage.py demo_routers`).
DEMO_ROUTER_USER, DEMO_ROUTER_PASSWORD = "admin", "demo-router-pass"
DEMO_ROUTERS = [  # name, API port, branch code, site
    ("core-nrb-west", 18728, "nrb-west", "Nairobi West POP"),
    ("core-kitengela", 18738, "ktl", "Kitengela POP"),
]
SITES = [  # name, kind, parent, branch code, capacity
    ("Nairobi West POP", "pop", None, "nrb-west", None),
    ("Langata Tower", "tower", "Nairobi West POP", "nrb-west", 120),
    ("Langata Sector 1", "sector", "Langata Tower", "nrb-west", 60),
    ("Langata Sector 2", "sector", "Langata Tower", "nrb-west", 60),
    ("Karen OLT", "olt", "Nairobi West POP", "nrb-west", 256),
    ("Karen Splitter 1", "splitter", "Karen OLT", "nrb-west", 32),
    ("Karen Splitter 2", "splitter", "Karen OLT", "nrb-west", 32),
    ("Kitengela POP", "pop", None, "ktl", None),
    ("Kitengela Tower", "tower", "Kitengela POP", "ktl", 80),
    ("Kitengela Sector North", "sector", "Kitengela Tower", "ktl", 40),
    ("Ruiru Hotspot Zone", "sector", None, "ruiru", 150),
]


def seed(subscribers: int = 300, out=None) -> None:
    say = out or (lambda text: None)
    cfg = SubscriberSettings.load()
    if cfg.account_pattern == "{seq:5}" and not Customer.objects.exists():
        cfg.account_pattern = "DF{seq:5}"
        cfg.save(update_fields=["account_pattern"])
    import_plans(PLANS_CSV, actor="seed_demo")
    branches = {b.code: b for b in Branch.objects.all()}
    sites = {}
    for name, kind, parent, branch, capacity in SITES:
        sites[name], _ = NetworkSite.objects.get_or_create(
            name=name,
            defaults={
                "kind": kind,
                "parent": sites.get(parent),
                "branch": branches.get(branch),
                "capacity": capacity,
            },
        )
    for name, port, branch, site in DEMO_ROUTERS:
        if not Router.objects.filter(name=name).exists():
            add_router(
                actor="seed_demo",
                name=name,
                host="127.0.0.1",
                port=port,
                username=DEMO_ROUTER_USER,
                password=DEMO_ROUTER_PASSWORD,
                branch=branches.get(branch),
                site=sites.get(site),
            )
    if Customer.objects.exists():
        return
    rng = random.Random(2026)
    _seed_subscribers(rng, subscribers, branches, sites)
    say(f"  {subscribers} subscribers")
    _seed_pipeline(rng, sites)


# The demo ISP's history starts this many days ago (billing.demo tells the rest of it).
HISTORY_DAYS = 185


def _seed_subscribers(rng, count, branches, sites):
    """Subscribers imported as active, then dated back: each joined on a day of the last
    HISTORY_DAYS (more of them lately, as an ISP that grows), so the reports have
    months of history. billing.demo then lives those months through billing's services
    (payments, terms, plan changes, suspensions) up to now."""
    plans = list(Plan.objects.all())
    leaves = [s for s in sites.values() if s.kind in ("sector", "splitter")]
    routers = list(Router.objects.values_list("name", flat=True))
    lines = ["account,name,phone,email,plan,username,password,router,status,expires"]
    for i in range(count):
        plan = rng.choice(plans)
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        phone = f"07{rng.randint(10, 99)}{i:06d}"
        user = f"{name.split()[0].lower()}{i:04d}"
        email = f"{user}@example.co.ke" if rng.random() < 0.4 else ""
        login = "" if plan.service == "static" else user
        password = f"pw-{rng.randint(100000, 999999)}" if login else ""
        lines.append(
            f",{name},{phone},{email},{plan.name},{login},{password},{rng.choice(routers)},active,"
        )
    report = import_subscribers("\n".join(lines), actor="seed_demo")
    if not report.ok:
        raise RuntimeError(f"demo subscribers refused: {report.errors[:3]}")
    by_branch = {r.branch_id: r for r in Router.objects.all()}
    fallback = Router.objects.filter(name=DEMO_ROUTERS[0][0]).first()
    now = timezone.now()
    for customer in Customer.objects.prefetch_related("service_accounts__plan").order_by("id"):
        site = rng.choice(leaves)
        # Each branch's subscribers hang on its router (Ruiru's on Nairobi West's).
        router = by_branch.get(site.branch_id, fallback)
        joined = now - timedelta(days=HISTORY_DAYS * rng.random() ** 1.2, hours=rng.randint(0, 9))
        Customer.objects.filter(pk=customer.pk).update(
            site=site, branch=site.branch, created_at=joined
        )
        for account in customer.service_accounts.all():
            # A prepaid account's first payment (billing.demo) buys its first term
            # from the day it joined.
            expires = joined if account.plan.billing == "prepaid" else None
            ServiceAccount.objects.filter(pk=account.pk).update(
                site=site,
                router=router,
                created_at=joined,
                activated_at=joined,
                expires_at=expires,
            )
            StatusChange.objects.filter(service_account=account).update(at=joined)


def _seed_pipeline(rng, sites):
    technician = User.objects.filter(role=Role.TECHNICIAN, is_active=True).first()
    office = User.objects.filter(role=Role.ADMIN).first() or "seed_demo"
    plans = list(Plan.objects.filter(service="pppoe"))
    leaves = [s for s in sites.values() if s.kind in ("sector", "splitter")]
    # Every stage of the pipeline has someone in it, new leads most of all.
    stages = (
        ["lead"] * 7
        + ["survey"] * 3
        + ["quoted"] * 2
        + ["scheduled"] * 3
        + ["equipped"] * 2
        + ["installed"] * 2
        + ["activated"] * 2
        + ["confirmed"] * 2
        + ["cancelled"]
    )
    for n, target in enumerate(stages):
        site = rng.choice(leaves)
        details = services.LeadDetails(
            name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            phone=f"0110{n:06d}",
            plan=rng.choice(plans),
            address=f"{site.name} area, house {n + 1}",
            latitude=round(-1.30 - rng.random() * 0.1, 6),
            longitude=round(36.70 + rng.random() * 0.2, 6),
            branch=site.branch,
            site=site,
            source=rng.choice(["walk-in", "referral", "web"]),
        )
        inst = services.create_lead(details, actor=office)
        _walk(inst, target, technician, office, n)
        # Waiting in its stage for a while, as leads do (some past the board's alarms).
        Installation.objects.filter(pk=inst.pk).update(
            stage_since=timezone.now() - timedelta(hours=rng.randint(2, 24 * 9))
        )


def _walk(inst, target, technician, office, n):
    steps = {
        "survey": {"note": "Line of sight OK"},
        "quoted": {"quote_amount": 3500},
        "scheduled": {
            "technician": technician,
            "scheduled_for": timezone.localdate() + timedelta(days=n % 3),
        },
        "equipped": {"serials": [f"CPE{n:05d}", f"RAD{n:05d}"]},
        "installed": {"note": "Installed"},
        "activated": {"note": "Service on"},
        "confirmed": {"note": "Customer confirmed"},
    }
    if target == "cancelled":
        services.advance_installation(
            inst, Installation.Stage.CANCELLED, actor=office, note="Customer chose another provider"
        )
        return
    for stage in services.STAGE_ORDER[1:]:
        if services.STAGE_ORDER.index(stage) > services.STAGE_ORDER.index(target):
            break
        services.advance_installation(inst, stage, actor=office, **steps[stage])
