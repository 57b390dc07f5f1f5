"""The form of a bulk action on the subscribers list (views.bulk): what to do, to whom
(customers ticked, or every customer of the list's filter) and, once, why."""

from django import forms

from ispops.staff.models import Branch
from subscribers.bulk_actions import Bulk
from subscribers.models import Plan

ACTIONS = [
    ("message", "Send a message"),
    (Bulk.SUSPEND, "Suspend"),
    (Bulk.PLAN, "Change plan"),
    (Bulk.BRANCH, "Move to a branch"),
]


class BulkForm(forms.Form):
    action = forms.ChoiceField(choices=ACTIONS)
    # The customers ticked on the page, or "all" with the list's query string.
    ids = forms.Field(required=False, widget=forms.MultipleHiddenInput)
    all = forms.BooleanField(required=False)
    query = forms.CharField(required=False, max_length=2000)
    plan = forms.ModelChoiceField(
        queryset=Plan.objects.filter(is_active=True), required=False, empty_label="Choose a plan"
    )
    branch = forms.ModelChoiceField(
        queryset=Branch.objects.none(), required=False, empty_label="Choose a branch"
    )
    reason = forms.CharField(
        max_length=255,
        required=False,
        help_text="Written once, on every account's history and in the audit log.",
    )

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["branch"].queryset = Branch.objects.visible_to(user)

    def clean_ids(self) -> list[int]:
        # Any customer ids: which of them the user may touch, the view decides.
        raw = self.cleaned_data["ids"] or []
        try:
            ids = sorted({int(pk) for pk in raw})
        except (TypeError, ValueError):
            raise forms.ValidationError("Those are not customers of this list.") from None
        if len(ids) > 10_000:
            raise forms.ValidationError("Tick at most 10,000; or choose all that match.")
        return ids

    def clean(self):
        data = super().clean()
        if not data.get("all") and not data.get("ids"):
            raise forms.ValidationError("Tick the customers first, or choose all that match.")
        action = data.get("action")
        if action == Bulk.PLAN and not data.get("plan") and self.data.get("confirm"):
            self.add_error("plan", "Choose the plan to move them to.")
        if action == Bulk.BRANCH and not data.get("branch") and self.data.get("confirm"):
            self.add_error("branch", "Choose the branch to move them to.")
        return data
