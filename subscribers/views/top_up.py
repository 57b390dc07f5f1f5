"""Staff's "Top up data" on a service account (issue 14): the plan's pack added to a
capped PPPoE account now, either charged to the account (an invoice of the pack's
price, due as bills are) or free as goodwill (a reason required, audited with who
gave it). Selling is for owner, admin, finance and support; giving free is for owner,
admin and support, who handle the complaints goodwill answers. The rules are
subscribers.top_ups'."""

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone

from ispops.staff.access import roles
from ispops.staff.models import Role
from network.usage_view import usage_of
from subscribers import top_ups
from subscribers.views.customers import get_account_for

SELLERS = (Role.OWNER, Role.ADMIN, Role.FINANCE, Role.SUPPORT)
GIVERS = (Role.OWNER, Role.ADMIN, Role.SUPPORT)
CHARGE, FREE = "charge", "free"


class TopUpForm(forms.Form):
    how = forms.ChoiceField(label="How", widget=forms.RadioSelect)
    reason = forms.CharField(
        label="Why free",
        max_length=150,
        required=False,
        help_text="Needed for a free top-up (kept in the account's history).",
    )

    def __init__(self, *args, pack, can_give: bool, **kwargs):
        super().__init__(*args, **kwargs)
        choices = [(CHARGE, f"Charge the pack price to the account (KES {pack.total:,.2f})")]
        if can_give:
            choices.append((FREE, "Free (goodwill)"))
        else:
            del self.fields["reason"]
        self.fields["how"].choices = choices
        self.fields["how"].initial = CHARGE

    def clean(self):
        data = super().clean()
        if data.get("how") == FREE and not (data.get("reason") or "").strip():
            self.add_error("reason", "Say why the data is given free.")
        return data


@roles(*SELLERS)
def account_top_up(request, pk):
    account = get_account_for(request, pk)
    try:
        pack = top_ups.pack_of(account)
    except top_ups.TopUpError as exc:
        messages.error(request, f"No top-up for this account: {exc}.")
        return redirect("subscribers:account", pk)
    can_give = request.user.role in GIVERS
    form = TopUpForm(request.POST or None, pack=pack, can_give=can_give)
    status = 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            charge = form.cleaned_data["how"] == CHARGE
            try:
                top_ups.give(
                    account,
                    actor=request.user,
                    charge=charge,
                    reason=form.cleaned_data.get("reason", ""),
                )
            except top_ups.TopUpError as exc:
                form.add_error(None, str(exc))
            else:
                how = "charged to the account" if charge else "free"
                messages.success(request, f"{pack.gigabytes} GB added ({how}).")
                return redirect("subscribers:account", pk)
    context = {
        "account": account,
        "customer": account.customer,
        "pack": pack,
        "form": form,
        "usage": usage_of([account], timezone.now()).get(account.pk),
    }
    return render(request, "subscribers/customers/top_up.html", context, status=status)


urls = [
    path("accounts/<int:pk>/top-up/", account_top_up, name="account_top_up"),
]
