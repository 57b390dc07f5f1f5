"""Forms of the lead-to-activation pipeline and the technician's job pages.

Each stage of an installation has one small form for what moving to it needs; the
service (subscribers.services.advance_installation) stays the judge of whether the
move is allowed.
"""

from django import forms
from django.utils import timezone

from ispops.staff.models import Branch, Role, User
from ispops.staff.scoping import in_branches_of, staff_of_branches_of
from subscribers import services
from subscribers.models import Installation, NetworkSite, Plan

Stage = Installation.Stage


def technicians():
    """Who can be sent to install: active staff whose role is technician."""
    return User.objects.filter(is_active=True, role=Role.TECHNICIAN).order_by("full_name", "email")


class TechnicianChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return obj.full_name or obj.email


def _note(label="Note", help_text=""):
    return forms.CharField(
        label=label,
        required=False,
        help_text=help_text,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


def _date_widget():
    return forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


# --- a new lead ---------------------------------------------------------------------


class LeadForm(forms.Form):
    name = forms.CharField(max_length=150)
    phone = forms.CharField(
        max_length=30,
        help_text="A Kenyan mobile number, like 0712 345 678.",
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
    )
    email = forms.EmailField(required=False)
    address = forms.CharField(max_length=255, required=False)
    latitude = forms.DecimalField(
        max_digits=9, decimal_places=6, min_value=-90, max_value=90, required=False
    )
    longitude = forms.DecimalField(
        max_digits=9, decimal_places=6, min_value=-180, max_value=180, required=False
    )
    plan = forms.ModelChoiceField(queryset=Plan.objects.filter(is_active=True))
    branch = forms.ModelChoiceField(queryset=Branch.objects.none(), required=False)
    site = forms.ModelChoiceField(
        queryset=NetworkSite.objects.all(), required=False, label="Network site"
    )
    source = forms.CharField(
        max_length=40, required=False, help_text="Walk-in, referral, web, field agent…"
    )
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user).filter(is_active=True)
        # Staff limited to some branches would lose sight of a lead without one.
        self.fields["branch"].required = user.branch_ids() is not None
        self.fields["site"].queryset = in_branches_of(user, NetworkSite.objects.all())

    def clean_phone(self):
        try:
            return services.clean_phone(self.cleaned_data["phone"])
        except services.SubscriberError as exc:
            raise forms.ValidationError(str(exc)) from None

    def details(self) -> services.LeadDetails:
        return services.LeadDetails(**self.cleaned_data)


# --- one form per stage -------------------------------------------------------------


class StepForm(forms.Form):
    """Moving to a stage that needs nothing but an optional note. `user`: who fills it
    in (choices of people are limited to their branches)."""

    note = _note()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user

    def service_kwargs(self) -> dict:
        """What advance_installation needs, from whatever fields were valid."""
        data = getattr(self, "cleaned_data", {})
        return {"note": data.get("note", "")}


class SurveyForm(StepForm):
    title = "Site survey"
    button = "Record the survey"
    note = _note("Survey notes", "What the technician will need: mounting, cable run, signal.")


class QuoteForm(StepForm):
    title = "Quotation approved"
    button = "Quotation approved"
    quote_amount = forms.DecimalField(
        label="Quote amount (KES)", max_digits=12, decimal_places=2, min_value=0
    )

    def service_kwargs(self):
        data = getattr(self, "cleaned_data", {})
        return {**super().service_kwargs(), "quote_amount": data.get("quote_amount")}


class ScheduleForm(StepForm):
    title = "Schedule the installation"
    button = "Schedule"
    technician = TechnicianChoiceField(queryset=User.objects.none())
    scheduled_for = forms.DateField(label="Date", widget=_date_widget())
    field_order = ["technician", "scheduled_for", "note"]

    def __init__(self, *args, user, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("scheduled_for", timezone.localdate())
        super().__init__(*args, user=user, **kwargs)
        self.fields["technician"].queryset = staff_of_branches_of(user, technicians())

    def service_kwargs(self):
        data = getattr(self, "cleaned_data", {})
        return {
            **super().service_kwargs(),
            "technician": data.get("technician"),
            "scheduled_for": data.get("scheduled_for"),
        }


class SerialsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 3, "autocapitalize": "characters"})


class EquipForm(StepForm):
    title = "Allocate equipment"
    button = "Equipment allocated"
    serials = SerialsField(
        label="Serial numbers", help_text="One per line, or separated by commas."
    )
    field_order = ["serials", "note"]

    def service_kwargs(self):
        data = getattr(self, "cleaned_data", {})
        return {**super().service_kwargs(), "serials": data.get("serials", "")}


class InstalledForm(StepForm):
    title = "Mark as installed"
    button = "Installed"
    note = _note(help_text="Normally the technician does this from the phone when done.")


class ActivateForm(StepForm):
    title = "Activate service"
    button = "Activate service"
    note = _note(help_text="Billing starts and the router is asked to provision the account.")


class ConfirmForm(StepForm):
    title = "Customer confirmed"
    button = "Customer confirmed"
    note = _note("What the customer said", "The customer confirms the service works.")


# The form for moving *to* each stage.
STAGE_FORMS: dict[str, type[StepForm]] = {
    Stage.SURVEY: SurveyForm,
    Stage.QUOTED: QuoteForm,
    Stage.SCHEDULED: ScheduleForm,
    Stage.EQUIPPED: EquipForm,
    Stage.INSTALLED: InstalledForm,
    Stage.ACTIVATED: ActivateForm,
    Stage.CONFIRMED: ConfirmForm,
}


class RescheduleForm(forms.Form):
    technician = TechnicianChoiceField(queryset=User.objects.none())
    scheduled_for = forms.DateField(label="Date", widget=_date_widget())
    note = forms.CharField(max_length=255, required=False)

    def __init__(self, *args, user, **kwargs):
        # Shown beside the next-step form: its own ids keep every label unambiguous.
        kwargs.setdefault("auto_id", "reschedule_%s")
        super().__init__(*args, **kwargs)
        self.fields["technician"].queryset = staff_of_branches_of(user, technicians())


class CancelForm(forms.Form):
    reason = forms.CharField(
        max_length=255, help_text="Why the customer is not going ahead (kept with the lead)."
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "cancel_%s")
        super().__init__(*args, **kwargs)


# --- the board's filter -------------------------------------------------------------


class PipelineFilterForm(forms.Form):
    branch = forms.ModelChoiceField(
        queryset=Branch.objects.none(), required=False, empty_label="All branches"
    )
    technician = TechnicianChoiceField(
        queryset=User.objects.none(), required=False, empty_label="All technicians"
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user)
        self.fields["technician"].queryset = staff_of_branches_of(user, technicians())


# --- the technician's job page -------------------------------------------------------


class CompleteJobForm(forms.Form):
    notes = forms.CharField(
        label="What was done",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Mounting, cable length, signal levels, anything the office should know.",
    )
    serials = SerialsField(
        label="Serial numbers of equipment installed",
        required=False,
        help_text="One per line or separated by commas; needed if none were allocated.",
    )
