"""Forms of the customer pages: the list's filters, customers, service accounts,
status moves, add-ons and discounts."""

from django import forms

from ispops.staff.models import Branch
from ispops.staff.scoping import in_branches_of
from network.models import Router
from subscribers.models import (
    AddOn,
    Customer,
    Discount,
    NetworkSite,
    Plan,
    ServiceAccount,
)
from subscribers.services import allowed_moves


class CustomerFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Name, phone, account, username"}
        ),
    )
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *Customer.Status.choices]
    )
    plan = forms.ModelChoiceField(
        required=False, queryset=Plan.objects.all(), empty_label="Any plan"
    )
    branch = forms.ModelChoiceField(
        required=False, queryset=Branch.objects.all(), empty_label="Any branch"
    )
    site = forms.ModelChoiceField(
        required=False, queryset=NetworkSite.objects.all(), empty_label="Any site"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user)
        self.fields["site"].queryset = visible_sites(user)


def visible_sites(user):
    """Sites this staff member may pick: their branches' and the shared ones."""
    return in_branches_of(user, NetworkSite.objects.all())


def visible_routers(user):
    """Routers this staff member may pick: their branches' and the shared ones."""
    return in_branches_of(user, Router.objects.all())


class CustomerForm(forms.ModelForm):
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. vip, estate-a")

    class Meta:
        model = Customer
        fields = [
            "name",
            "phone",
            "alt_phone",
            "email",
            "id_number",
            "address",
            "latitude",
            "longitude",
            "branch",
            "site",
            "notes",
        ]
        widgets = {
            "phone": forms.TextInput(attrs={"type": "tel"}),
            "alt_phone": forms.TextInput(attrs={"type": "tel"}),
            "notes": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user).filter(is_active=True)
        self.fields["site"].queryset = visible_sites(user)
        if self.instance.pk:
            self.initial["tags"] = ", ".join(self.instance.tags)

    def clean_tags(self):
        raw = self.cleaned_data["tags"]
        return sorted({t.strip().lower() for t in raw.split(",") if t.strip()})


class NewServiceAccountForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(is_active=True))
    username = forms.CharField(max_length=64, required=False, help_text="PPPoE or hotspot login.")
    password = forms.CharField(required=False, widget=forms.PasswordInput(render_value=False))
    static_ip = forms.GenericIPAddressField(protocol="IPv4", required=False)
    mac = forms.CharField(max_length=17, required=False, label="MAC address")
    router = forms.ModelChoiceField(queryset=Router.objects.none(), required=False)
    site = forms.ModelChoiceField(queryset=NetworkSite.objects.none(), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Another branch's router or site is refused even when posted by hand.
        self.fields["router"].queryset = visible_routers(user)
        self.fields["site"].queryset = visible_sites(user)


class ServiceAccountForm(forms.Form):
    username = forms.CharField(max_length=64, required=False)
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Leave blank to keep the current password.",
    )
    static_ip = forms.GenericIPAddressField(protocol="IPv4", required=False)
    mac = forms.CharField(max_length=17, required=False, label="MAC address")
    router = forms.ModelChoiceField(queryset=Router.objects.none(), required=False)
    site = forms.ModelChoiceField(queryset=NetworkSite.objects.none(), required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # Another branch's router or site is refused even when posted by hand.
        self.fields["router"].queryset = visible_routers(user)
        self.fields["site"].queryset = visible_sites(user)


class StatusForm(forms.Form):
    to = forms.ChoiceField(label="Move to")
    reason = forms.CharField(max_length=255)

    def __init__(self, *args, account: ServiceAccount, **kwargs):
        super().__init__(*args, **kwargs)
        labels = dict(ServiceAccount.Status.choices)
        self.fields["to"].choices = [(s, labels[s]) for s in allowed_moves(account.status)]


class PlanChangeForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(is_active=True))


class AddOnForm(forms.ModelForm):
    class Meta:
        model = AddOn
        fields = ["kind", "name", "price", "starts_on", "ends_on"]
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "ends_on": forms.DateInput(attrs={"type": "date"}),
        }

    def clean(self):
        data = super().clean()
        if data.get("ends_on") and data.get("starts_on") and data["ends_on"] < data["starts_on"]:
            self.add_error("ends_on", "An add-on cannot end before it starts.")
        return data


class DiscountForm(forms.ModelForm):
    class Meta:
        model = Discount
        fields = ["kind", "value", "reason", "starts_on", "ends_on"]
        widgets = {
            "starts_on": forms.DateInput(attrs={"type": "date"}),
            "ends_on": forms.DateInput(attrs={"type": "date"}),
        }

    def clean(self):
        data = super().clean()
        if data.get("ends_on") and data.get("starts_on") and data["ends_on"] < data["starts_on"]:
            self.add_error("ends_on", "A discount cannot end before it starts.")
        if data.get("kind") == Discount.Kind.PERCENT and (data.get("value") or 0) > 100:
            self.add_error("value", "A percentage discount is at most 100.")
        return data
