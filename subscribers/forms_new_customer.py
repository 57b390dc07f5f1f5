"""The new-customer form: contact, plan, login, router or site, and for a
technician-free install "activate now" with the first payment. The service
(subscribers.services.sign_up) stays the judge; the form checks the same rules first so
staff see every problem at once, next to its field."""

from decimal import Decimal

from django import forms
from django.utils import timezone

from ispops.staff.models import Branch
from network.models import Router
from subscribers import services
from subscribers.forms import visible_routers, visible_sites
from subscribers.models import NetworkSite, Plan, ServiceType


class PlanChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, plan):
        cycle, billing = plan.get_cycle_display().lower(), plan.get_billing_display().lower()
        return f"{plan.name} · KES {plan.price:,.0f} {cycle}, {billing}"


class NewCustomerForm(forms.Form):
    PAYMENT_METHODS = [
        ("", "No payment yet"),
        ("cash", "Cash"),
        ("mpesa", "M-Pesa"),
        ("bank", "Bank"),
    ]

    # Contact
    name = forms.CharField(max_length=150)
    phone = forms.CharField(
        max_length=30,
        help_text="A Kenyan mobile number, like 0712 345 678.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    email = forms.EmailField(required=False)
    branch = forms.ModelChoiceField(queryset=Branch.objects.none(), required=False)
    site = forms.ModelChoiceField(
        queryset=NetworkSite.objects.none(), required=False, label="Network site"
    )
    address = forms.CharField(max_length=255, required=False)
    # Plan and login
    plan = PlanChoiceField(queryset=Plan.objects.none())
    username = forms.CharField(
        max_length=64,
        required=False,
        label="PPPoE username",
        help_text="Left blank: the account number.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}),
    )
    password = forms.CharField(
        max_length=64,
        required=False,
        label="PPPoE password",
        help_text="Left blank: a random one.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "autocapitalize": "none"}),
    )
    router = forms.ModelChoiceField(
        queryset=Router.objects.none(),
        required=False,
        help_text="Left blank: the router serving the site or branch.",
    )
    # Activation and the first payment
    activate_now = forms.BooleanField(
        required=False,
        label="Activate now",
        help_text="No technician visit: in service at once, with a welcome SMS. A prepaid "
        "plan's first payment below buys its first term; a postpaid plan gets its first "
        "(prorated) invoice. Unticked, the customer goes into the pipeline as a lead.",
    )
    payment_amount = forms.DecimalField(
        required=False,
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0.01"),
        label="First payment (KES)",
        widget=forms.NumberInput(attrs={"inputmode": "decimal", "step": "0.01"}),
    )
    payment_method = forms.ChoiceField(choices=PAYMENT_METHODS, required=False, label="Paid by")
    payment_reference = forms.CharField(
        max_length=40,
        required=False,
        label="Payment reference",
        help_text="M-Pesa code or bank slip. Optional for cash: cash gets our receipt number.",
    )

    GROUPS = [
        ("Contact", ["name", "phone", "email", "branch", "site", "address"]),
        ("Plan and login", ["plan", "username", "password", "router"]),
        (
            "Activation",
            ["activate_now", "payment_amount", "payment_method", "payment_reference"],
        ),
    ]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user).filter(is_active=True)
        # Staff limited to some branches would lose sight of a customer without one.
        self.fields["branch"].required = user.branch_ids() is not None
        # Another branch's router or site is refused even when posted by hand.
        self.fields["site"].queryset = visible_sites(user)
        self.fields["router"].queryset = visible_routers(user)
        # A static-IP service needs its address, which this form does not take: those
        # customers are made with the customer form and the account's own page.
        self.fields["plan"].queryset = (
            Plan.objects.filter(is_active=True).exclude(service=ServiceType.STATIC).order_by("name")
        )

    def groups(self):
        return [(legend, [self[name] for name in names]) for legend, names in self.GROUPS]

    def clean_phone(self):
        try:
            return services.clean_phone(self.cleaned_data["phone"])
        except services.SubscriberError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_username(self):
        return self.cleaned_data["username"].strip()

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            services.check_sign_up(self.details(), timezone.now())
        except services.SignUpError as exc:
            self.add_error(exc.field or None, str(exc))
        return data

    def details(self) -> services.SignUp:
        data = self.cleaned_data
        return services.SignUp(
            name=data["name"],
            phone=data["phone"],
            plan=data["plan"],
            email=data["email"],
            address=data["address"],
            branch=data["branch"],
            site=data["site"],
            router=data["router"],
            username=data["username"],
            password=data["password"],
            activate_now=data["activate_now"],
            payment_amount=data["payment_amount"],
            payment_method=data["payment_method"],
            payment_reference=data["payment_reference"].strip(),
        )
