"""Forms of the ticket pages: the queue's filters, new tickets and outages, the actions on
a ticket (status, assignment, comment, photo) and the SLA settings."""

from django import forms
from django.template.defaultfilters import filesizeformat

from ispops.staff.models import Role, User
from ispops.staff.scoping import staff_of_branches_of
from subscribers.models import Customer, NetworkSite, ServiceAccount
from tickets import services
from tickets.models import Category, Priority, SlaTarget, Status, TicketSettings


def staff_choices(user):
    """Staff a ticket can go to: those working in `user`'s branches."""
    active = User.objects.filter(is_active=True).exclude(role="")
    return staff_of_branches_of(user, active).order_by("full_name", "email")


class TicketFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search",
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": "Subject, T-00042, account"}
        ),
    )
    status = forms.ChoiceField(
        required=False,
        choices=[("", "Open (not resolved)"), ("all", "Any status"), *Status.choices],
    )
    assignee = forms.ChoiceField(required=False)
    risk = forms.ChoiceField(
        required=False,
        label="SLA",
        choices=[
            ("", "Any SLA state"),
            ("breached", "Breached"),
            ("at_risk", "At risk"),
            ("ok", "On time"),
        ],
    )
    category = forms.ChoiceField(required=False, choices=[("", "Any category"), *Category.choices])
    priority = forms.ChoiceField(required=False, choices=[("", "Any priority"), *Priority.choices])
    outages = forms.ChoiceField(
        required=False,
        label="Outages",
        choices=[
            ("", "One line an outage"),
            ("each", "Each customer's ticket too"),
        ],
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].choices = [
            ("", "Anyone"),
            ("me", "Me"),
            ("none", "Nobody"),
            *[(str(u.pk), str(u)) for u in staff_choices(user)],
        ]


class TicketForm(forms.Form):
    account = forms.CharField(label="Customer account", max_length=20)
    service_account = forms.ModelChoiceField(
        required=False, queryset=ServiceAccount.objects.none(), empty_label="(any / not known)"
    )
    subject = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}))
    category = forms.ChoiceField(choices=Category.choices)
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.NORMAL)
    assignee = forms.ModelChoiceField(
        required=False, queryset=User.objects.none(), empty_label="(nobody yet)"
    )
    tell_customer = forms.BooleanField(
        required=False, initial=True, label="Send the customer an SMS with the ticket number"
    )

    def __init__(self, *args, user, customer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        self.fields["assignee"].queryset = staff_choices(user)
        if customer is None and self.is_bound:
            customer = self._find(self.data.get("account", ""))
        self.customer = customer
        if customer is not None:
            self.fields["account"].initial = customer.account
            self.fields["service_account"].queryset = customer.service_accounts.select_related(
                "plan"
            )
        else:
            self.fields["service_account"].widget = forms.HiddenInput()

    def _find(self, account: str):
        account = account.strip()
        # Raw POST data reaches here before field cleaning: PostgreSQL refuses a NUL in
        # a query, and no account is longer than the field allows.
        if not account or "\x00" in account or len(account) > self.fields["account"].max_length:
            return None
        return Customer.objects.visible_to(self.user).filter(account__iexact=account).first()

    def clean_account(self):
        customer = self._find(self.cleaned_data["account"])
        if customer is None:
            raise forms.ValidationError("No customer of yours has this account number.")
        self.customer = customer
        return customer.account


class OutageForm(forms.Form):
    site = forms.ModelChoiceField(
        queryset=NetworkSite.objects.all(),
        help_text="Every active or suspended customer at this site or any site below it "
        "gets a linked ticket and an SMS.",
    )
    subject = forms.CharField(max_length=200, initial="No connection: outage in your area")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    priority = forms.ChoiceField(choices=Priority.choices, initial=Priority.HIGH)

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        allowed = user.branch_ids()
        if allowed is not None:
            self.fields["site"].queryset = NetworkSite.objects.filter(branch_id__in=allowed)


class StatusForm(forms.Form):
    to = forms.ChoiceField(label="New status")
    note = forms.CharField(required=False, max_length=500, label="Note (staff only)")

    def __init__(self, *args, ticket, user, **kwargs):
        super().__init__(*args, **kwargs)
        moves = services.allowed_moves(ticket, user)
        self.current = ticket.status
        # The ticket's own status first and selected: a select showing its first move
        # ("New") read as if an assigned ticket were new.
        now = [(ticket.status, f"{Status(ticket.status).label} (now)")] if moves else []
        self.fields["to"].choices = now + [(s, Status(s).label) for s in moves]
        self.fields["to"].initial = ticket.status

    def clean_to(self):
        to = self.cleaned_data["to"]
        if to == self.current:
            raise forms.ValidationError(
                f"It is {Status(to).label.lower()} already: choose the status it moves to."
            )
        return to


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(
        required=False, queryset=User.objects.none(), empty_label="(nobody)"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = staff_choices(user)


SEND_CHOICES = [
    ("", "Internal note (staff only)"),
    ("sms", "Send to the customer by SMS"),
    ("email", "Send to the customer by email"),
    ("sms,email", "Send by SMS and email"),
]


class CommentForm(forms.Form):
    body = forms.CharField(label="Comment", widget=forms.Textarea(attrs={"rows": 3}))
    send = forms.ChoiceField(required=False, choices=SEND_CHOICES, label="Who sees it")

    def channels(self) -> tuple[str, ...]:
        send = self.cleaned_data.get("send") or ""
        return tuple(c for c in send.split(",") if c)


class PhotoForm(forms.Form):
    photo = forms.FileField(
        widget=forms.ClearableFileInput(attrs={"accept": "image/*", "capture": "environment"}),
        help_text=f"JPEG, PNG, WebP or GIF, at most {filesizeformat(services.MAX_PHOTO_BYTES)}.",
    )

    def clean_photo(self):
        upload = self.cleaned_data["photo"]
        try:
            self.content_type = services.check_photo(upload)
        except services.TicketError as exc:
            raise forms.ValidationError(str(exc).capitalize() + ".") from None
        return upload


class TicketSettingsForm(forms.ModelForm):
    class Meta:
        model = TicketSettings
        fields = ["supervisor", "warn_percent"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["supervisor"].queryset = User.objects.filter(
            is_active=True, role__in=[Role.OWNER, Role.ADMIN, Role.SUPPORT]
        )
        self.fields["warn_percent"].min_value = 1
        self.fields["warn_percent"].max_value = 99
        self.fields["warn_percent"].widget.attrs.update(min=1, max=99)


class SlaTableForm(forms.Form):
    """One pair of minute fields per category and priority: `<cat>__<prio>__response`."""

    def __init__(self, *args, targets: dict[tuple[str, str], SlaTarget], **kwargs):
        super().__init__(*args, **kwargs)
        for (category, priority), target in sorted(targets.items()):
            for part, value in (
                ("response", target.first_response_minutes),
                ("resolution", target.resolution_minutes),
            ):
                self.fields[f"{category}__{priority}__{part}"] = forms.IntegerField(
                    min_value=1,
                    max_value=60 * 24 * 90,
                    initial=value,
                    label=f"{Category(category).label} {Priority(priority).label} {part}",
                    widget=forms.NumberInput(attrs={"style": "width:6rem"}),
                )

    def rows(self):
        """[(category label, [(priority label, response field, resolution field)])]"""
        table = []
        for category, category_label in Category.choices:
            cells = [
                (
                    priority_label,
                    self[f"{category}__{priority}__response"],
                    self[f"{category}__{priority}__resolution"],
                )
                for priority, priority_label in Priority.choices
            ]
            table.append((category_label, cells))
        return table

    def values(self) -> dict:
        data = self.cleaned_data
        return {
            (c, p): (data[f"{c}__{p}__response"], data[f"{c}__{p}__resolution"])
            for c in Category.values
            for p in Priority.values
        }
