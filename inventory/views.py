"""Inventory pages: items (list, search, detail with history and moves, receiving),
stock per store with low-stock highlights, equipment models, stores, thresholds and the
CSV import.

Owners, admins and support work here; technicians see the items issued to them;
finance does not see inventory.
"""

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from inventory import services
from inventory.forms import (
    EquipmentModelForm,
    ImportForm,
    ItemFilterForm,
    MoveForm,
    ReceiveForm,
    StoreForm,
    ThresholdForm,
)
from inventory.imports import COLUMNS, import_items
from inventory.models import EquipmentModel, Item, Movement, StockThreshold, Store
from ispops.lib.htmx import render_partial
from ispops.staff.access import roles
from ispops.staff.models import Branch, Role

VIEWERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT, Role.TECHNICIAN)
OPERATORS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
MANAGERS = (Role.OWNER, Role.ADMIN)
PER_PAGE = 50


# --- fetch and authorise ------------------------------------------------------------


def visible_stores(user):
    """Stores of the branches this staff member may see."""
    allowed = user.branch_ids()
    stores = Store.objects.select_related("branch")
    return stores if allowed is None else stores.filter(branch_id__in=allowed)


def get_item_for(request, pk) -> Item:
    """The item, if this staff member may see it (a technician: if it is issued to
    them; branch-limited staff: if its store is in their branches); else 404."""
    return get_object_or_404(Item.objects.visible_to(request.user).for_list(), pk=pk)


def get_model_for(request, pk) -> EquipmentModel:
    return get_object_or_404(EquipmentModel, pk=pk)


def get_store_for(request, pk) -> Store:
    return get_object_or_404(visible_stores(request.user), pk=pk)


def _post_only(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return None


# --- items ----------------------------------------------------------------------------


def filtered_items(request, form: ItemFilterForm):
    items = Item.objects.visible_to(request.user)
    if not form.is_bound:
        return items
    if not form.is_valid():
        return items.none()
    data = form.cleaned_data
    if term := data["q"].strip():
        items = _search(items, term)
    if data["model"]:
        items = items.filter(model=data["model"])
    if data["state"]:
        items = items.filter(state=data["state"])
    if data["store"]:
        items = items.filter(store=data["store"])
    return items


def _search(items, term: str):
    """Serials are stored without spaces in upper case, MACs as AA:BB:..; a search
    matches part of either, typed in any case or MAC notation."""
    serial = "".join(term.split()).upper()
    hexes = "".join(ch for ch in term.upper() if ch in "0123456789ABCDEF")
    query = Q(serial__contains=serial)
    if len(hexes) >= 4:
        # "aabb.cc" -> "AA:BB:CC" as stored; an odd length may start mid-pair, so both.
        pairs = [":".join(hexes[i : i + 2] for i in range(0, len(hexes), 2))]
        pairs.append(":".join(hexes[i : i + 2] for i in range(1, len(hexes), 2)))
        for fragment in pairs:
            query |= Q(mac__contains=fragment.strip(":"))
    return items.filter(query)


@roles(*VIEWERS)
def item_list(request):
    form = ItemFilterForm(request.GET or None)
    stores = visible_stores(request.user)
    form.fields["store"].queryset = stores
    items = filtered_items(request, form).for_list().order_by("model__name", "serial")
    page = Paginator(items, PER_PAGE).get_page(request.GET.get("page"))
    context = {
        "form": form,
        "page": page,
        "can_move": request.user.role in OPERATORS,
        "can_manage": request.user.role in MANAGERS,
        "mine_only": request.user.role == Role.TECHNICIAN,
    }
    return render_partial(request, "inventory/items.html", "results", context)


@roles(*VIEWERS)
def item_detail(request, pk):
    item = get_item_for(request, pk)
    return _render_item(request, item, None)


def _render_item(request, item, bad_form, status=200):
    can_move = request.user.role in OPERATORS
    forms = {}
    if can_move:
        for kind in services.allowed_moves(item.state):
            if bad_form is not None and bad_form.data.get("kind") == kind:
                forms[kind] = bad_form
            else:
                forms[kind] = MoveForm(initial={"kind": kind}, user=request.user)
            forms[kind].fields["store"].queryset = visible_stores(request.user).filter(
                is_active=True
            )
    context = {
        "item": item,
        "movements": services.history(item),
        "move_forms": [(kind, Movement.Kind(kind).label, f) for kind, f in forms.items()],
        # A refusal of a move this state no longer offers is shown above the forms.
        "move_errors": bad_form.non_field_errors() if bad_form is not None else [],
        "can_move": can_move,
    }
    return render(request, "inventory/item.html", context, status=status)


@roles(*OPERATORS)
def item_move(request, pk):
    if refused := _post_only(request):
        return refused
    item = get_item_for(request, pk)
    form = MoveForm(request.POST, user=request.user)
    form.fields["store"].queryset = visible_stores(request.user).filter(is_active=True)
    if not form.is_valid():
        return _render_item(request, item, form, status=400)
    data = form.cleaned_data
    try:
        services.move(
            item,
            data["kind"],
            actor=request.user,
            store=data.get("store"),
            holder=data.get("technician"),
            service_account=data.get("service_account"),
            note=data.get("note", ""),
        )
    except services.InventoryError as exc:
        form.add_error(None, str(exc))
        item.refresh_from_db()
        return _render_item(request, item, form, status=400)
    messages.success(request, f"{item.serial}: {Movement.Kind(data['kind']).label.lower()}.")
    return redirect("inventory:item", item.pk)


@roles(*OPERATORS)
def item_receive(request):
    stores = visible_stores(request.user)
    form = ReceiveForm(request.POST or None, stores=stores)
    if request.method == "POST" and form.is_valid():
        try:
            item = services.receive_item(actor=request.user, **form.cleaned_data)
        except services.InventoryError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{item} received into {item.store}.")
            return redirect("inventory:item", item.pk)
    status = 400 if form.is_bound else 200
    return render(request, "inventory/receive.html", {"form": form}, status=status)


# --- stock ----------------------------------------------------------------------------


@roles(*OPERATORS)
def stock(request):
    form = (
        ThresholdForm(stores=visible_stores(request.user))
        if request.user.role in MANAGERS
        else None
    )
    return _render_stock(request, form)


def _render_stock(request, threshold_form, status=200):
    stores = visible_stores(request.user).filter(is_active=True)
    page = Paginator(stores, 10).get_page(request.GET.get("page"))
    shown = list(page)
    counts = services.stock_counts(shown)
    out = (
        Item.objects.filter(store__in=shown, state=Item.State.ISSUED)
        .values_list("store_id", "model_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    issued = {(s, m): n for s, m, n in out}
    thresholds = {
        (t.store_id, t.model_id): t
        for t in StockThreshold.objects.filter(store__in=shown).select_related("model")
    }
    model_ids = {m for _, m in counts} | {m for _, m in issued} | {m for _, m in thresholds}
    models = {m.pk: m for m in EquipmentModel.objects.filter(pk__in=model_ids)}
    sections = []
    for store in shown:
        rows = []
        for model in sorted(models.values(), key=lambda m: m.name.lower()):
            key = (store.pk, model.pk)
            if key not in counts and key not in issued and key not in thresholds:
                continue
            threshold = thresholds.get(key)
            in_stock = counts.get(key, 0)
            rows.append(
                {
                    "model": model,
                    "in_stock": in_stock,
                    "issued": issued.get(key, 0),
                    "minimum": threshold.minimum if threshold else None,
                    "low": bool(threshold and in_stock < threshold.minimum),
                }
            )
        sections.append({"store": store, "rows": rows})
    low = services.low_stock().filter(store__in=visible_stores(request.user))
    context = {
        "page": page,
        "sections": sections,
        "low": low,
        "threshold_form": threshold_form,
    }
    return render(request, "inventory/stock.html", context, status=status)


@roles(*MANAGERS)
def threshold_set(request):
    if refused := _post_only(request):
        return refused
    form = ThresholdForm(request.POST, stores=visible_stores(request.user))
    if not form.is_valid():
        return _render_stock(request, form, status=400)
    data = form.cleaned_data
    get_store_for(request, data["store"].pk)  # branch visibility
    services.set_threshold(
        actor=request.user, model=data["model"], store=data["store"], minimum=data["minimum"]
    )
    if data["minimum"]:
        messages.success(
            request, f"{data['model']} at {data['store']}: alert below {data['minimum']}."
        )
    else:
        messages.success(request, f"No minimum for {data['model']} at {data['store']}.")
    return redirect("inventory:stock")


# --- models and stores ------------------------------------------------------------------


@roles(*MANAGERS)
def model_list(request):
    form = EquipmentModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        model = form.save()
        messages.success(request, f"Model {model} added.")
        return redirect("inventory:models")
    models = EquipmentModel.objects.annotate(
        n_items=Count("items", filter=~Q(items__state=Item.State.WRITTEN_OFF))
    ).order_by("name")
    page = Paginator(models, PER_PAGE).get_page(request.GET.get("page"))
    status = 400 if form.is_bound else 200
    return render(request, "inventory/models.html", {"form": form, "page": page}, status=status)


@roles(*MANAGERS)
def model_edit(request, pk):
    model = get_model_for(request, pk)
    form = EquipmentModelForm(request.POST or None, instance=model)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Model {model} saved.")
        return redirect("inventory:models")
    status = 400 if form.is_bound else 200
    context = {"form": form, "title": f"Edit {model}", "back": "inventory:models"}
    return render(request, "inventory/form.html", context, status=status)


@roles(*MANAGERS)
def store_list(request):
    form = StoreForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        store = form.save()
        messages.success(request, f"Store {store} added.")
        return redirect("inventory:stores")
    stores = (
        visible_stores(request.user)
        .annotate(n_stock=Count("items", filter=Q(items__state=Item.State.IN_STOCK)))
        .order_by("name")
    )
    page = Paginator(stores, PER_PAGE).get_page(request.GET.get("page"))
    status = 400 if form.is_bound else 200
    return render(request, "inventory/stores.html", {"form": form, "page": page}, status=status)


@roles(*MANAGERS)
def store_edit(request, pk):
    store = get_store_for(request, pk)
    form = StoreForm(request.POST or None, instance=store, user=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Store {store} saved.")
        return redirect("inventory:stores")
    status = 400 if form.is_bound else 200
    context = {"form": form, "title": f"Edit {store}", "back": "inventory:stores"}
    return render(request, "inventory/form.html", context, status=status)


# --- import -----------------------------------------------------------------------------


@roles(*MANAGERS)
def import_page(request):
    """Check (and unless it is a dry run, write) a CSV of items; a few thousand rows
    take a second or two, so this runs on the request rather than through a job."""
    form = ImportForm(request.POST or None, request.FILES or None)
    report = None
    if request.method == "POST" and form.is_valid():
        report = import_items(
            form.text,
            actor=request.user,
            dry_run=form.cleaned_data["dry_run"],
            stores=Store.objects.filter(
                is_active=True, branch__in=Branch.objects.visible_to(request.user)
            ),
        )
    status = 400 if (form.is_bound and (not form.is_valid() or not report.ok)) else 200
    context = {"form": form, "report": report, "columns": COLUMNS}
    return render(request, "inventory/import.html", context, status=status)


urls = [
    path("inventory/", item_list, name="items"),
    path("inventory/items/new/", item_receive, name="receive"),
    path("inventory/items/<int:pk>/", item_detail, name="item"),
    path("inventory/items/<int:pk>/move/", item_move, name="move"),
    path("inventory/stock/", stock, name="stock"),
    path("inventory/stock/threshold/", threshold_set, name="threshold"),
    path("inventory/models/", model_list, name="models"),
    path("inventory/models/<int:pk>/", model_edit, name="model_edit"),
    path("inventory/stores/", store_list, name="stores"),
    path("inventory/stores/<int:pk>/", store_edit, name="store_edit"),
    path("inventory/import/", import_page, name="import"),
]
