"""Forms of the inventory pages: the item list's filters, receiving an item, moving one,
equipment models, stores, thresholds and the CSV upload."""

from decimal import Decimal

from django import forms
from django.db.models import Q

from inventory import services
from inventory.models import EquipmentModel, Item, Movement, Store
from ispops.staff.models import Branch, User
from ispops.staff.scoping import staff_of_branches_of
from subscribers.models import Customer, ServiceAccount

MAX_UPLOAD_BYTES = 2 * 1024 * 1024


class ItemFilterForm(forms.Form):
    q = forms.CharField(
        label="Search",
        required=False,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Serial or MAC"}),
    )
    model = forms.ModelChoiceField(
        queryset=EquipmentModel.objects.all(), required=False, empty_label="Any model"
    )
    state = forms.ChoiceField(choices=[("", "Any state"), *Item.State.choices], required=False)
    store = forms.ModelChoiceField(
        queryset=Store.objects.all(), required=False, empty_label="Any store"
    )


class ReceiveForm(forms.Form):
    model = forms.ModelChoiceField(queryset=EquipmentModel.objects.filter(is_active=True))
    store = forms.ModelChoiceField(queryset=Store.objects.filter(is_active=True))
    serial = forms.CharField(max_length=80, help_text="Case and spaces are ignored.")
    mac = forms.CharField(label="MAC address", max_length=40, required=False)
    supplier = forms.CharField(max_length=120, required=False)
    purchased_on = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    cost = forms.DecimalField(
        label="Cost (KES)",
        max_digits=12,
        decimal_places=2,
        min_value=Decimal("0"),
        required=False,
    )
    notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args, stores=None, **kwargs):
        super().__init__(*args, **kwargs)
        if stores is not None:
            self.fields["store"].queryset = stores.filter(is_active=True)

    def clean_serial(self):
        try:
            return services.clean_serial(self.cleaned_data["serial"])
        except services.InventoryError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_mac(self):
        try:
            return services.clean_mac(self.cleaned_data["mac"])
        except services.InventoryError as exc:
            raise forms.ValidationError(str(exc)) from None


class MoveForm(forms.Form):
    """One form for every movement; which fields count depends on `kind`."""

    kind = forms.ChoiceField(
        choices=[(k, label) for k, label in Movement.Kind.choices if k != Movement.Kind.RECEIVED],
        widget=forms.HiddenInput,
    )
    technician = forms.ModelChoiceField(queryset=User.objects.none(), required=False)
    account = forms.CharField(
        label="Customer account or login",
        max_length=64,
        required=False,
        help_text="The customer's account number (if they have one service) or the login.",
    )
    store = forms.ModelChoiceField(
        queryset=Store.objects.none(), required=False, empty_label="Its own store"
    )
    note = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Only staff who work in this user's branches; a forged id is a form error.
        self.fields["technician"].queryset = staff_of_branches_of(
            user, User.objects.filter(is_active=True, role__in=services.HOLDER_ROLES)
        )
        self.fields["store"].queryset = Store.objects.filter(is_active=True)

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == Movement.Kind.ISSUED and not data.get("technician"):
            self.add_error("technician", "Choose the technician.")
        if kind == Movement.Kind.INSTALLED:
            data["service_account"] = self._account(data.get("account", ""))
        if kind == Movement.Kind.WRITTEN_OFF and not data.get("note", "").strip():
            self.add_error("note", "Say why the item is written off.")
        return data

    def _account(self, text: str):
        text = text.strip()
        if not text:
            self.add_error("account", "Give the customer's account number or the login.")
            return None
        visible = Customer.objects.visible_to(self.user)
        live = ServiceAccount.objects.filter(customer__in=visible).exclude(
            status=ServiceAccount.Status.TERMINATED
        )
        by_login = list(live.filter(username__iexact=text).select_related("customer")[:2])
        if len(by_login) == 1:
            return by_login[0]
        by_customer = list(live.filter(customer__account__iexact=text).select_related("customer"))
        if len(by_customer) == 1:
            return by_customer[0]
        if by_customer:
            self.add_error(
                "account",
                f"Customer {text} has {len(by_customer)} service accounts; give the login.",
            )
        else:
            self.add_error("account", f"No live service account found for {text!r}.")
        return None


class EquipmentModelForm(forms.ModelForm):
    class Meta:
        model = EquipmentModel
        fields = ["name", "kind", "manufacturer", "is_active"]


class StoreForm(forms.ModelForm):
    class Meta:
        model = Store
        fields = ["name", "branch", "address", "is_active"]

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        # A manager limited to some branches keeps stores in those branches only.
        self.fields["branch"].queryset = Branch.objects.visible_to(user).filter(
            Q(is_active=True) | Q(pk=self.instance.branch_id)
        )


class ThresholdForm(forms.Form):
    model = forms.ModelChoiceField(queryset=EquipmentModel.objects.filter(is_active=True))
    store = forms.ModelChoiceField(queryset=Store.objects.filter(is_active=True))
    minimum = forms.IntegerField(
        min_value=0, max_value=100_000, help_text="Alert below this many in stock; 0 removes it."
    )

    def __init__(self, *args, stores, **kwargs):
        super().__init__(*args, **kwargs)
        # The stores of the user's branches only: a forged id is a form error.
        self.fields["store"].queryset = stores.filter(is_active=True)


class ImportForm(forms.Form):
    file = forms.FileField(
        label="CSV file (UTF-8)",
        help_text="At most 2 MB; the first line names the columns.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    dry_run = forms.BooleanField(
        required=False, label="Dry run: check the file and count the rows, write nothing"
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is over 2 MB; split it into smaller files.")
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            raise forms.ValidationError(
                "The file is not UTF-8 text. Save it as 'CSV UTF-8' and upload it again."
            ) from None
        if "\x00" in text:
            raise forms.ValidationError("This is not a CSV text file. Save it as CSV UTF-8.")
        self.text = text
        return upload
