"""The ISP's subscriber settings: account number pattern and default billing mode."""

from django import forms
from django.contrib import messages
from django.db import transaction
from django.shortcuts import redirect, render
from django.urls import path

from ispops import audit
from ispops.staff.access import roles
from ispops.staff.models import Role
from subscribers import services
from subscribers.models import SubscriberSettings


class SettingsForm(forms.ModelForm):
    class Meta:
        model = SubscriberSettings
        fields = ["account_pattern", "next_account_seq", "default_billing"]
        labels = {"next_account_seq": "Next sequence number"}
        help_texts = {
            "account_pattern": "Letters and digits around {seq} or {seq:5} (zero-padded to 5), "
            "e.g. DF{seq:5} gives DF00042. Customers pay with it as the M-Pesa account, so "
            "it fits in 12 characters.",
        }

    def clean_account_pattern(self):
        try:
            return services.validate_account_pattern(self.cleaned_data["account_pattern"])
        except services.SubscriberError as exc:
            raise forms.ValidationError(str(exc)) from None


@roles(Role.OWNER, Role.ADMIN)
def subscriber_settings(request):
    current = SubscriberSettings.load()
    form = SettingsForm(request.POST or None, instance=current)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic(), audit.acting_as(request.user):
            form.save()
        messages.success(request, "Saved.")
        return redirect("subscribers:settings")
    sample = services.expand_account_pattern(current.account_pattern, current.next_account_seq)
    return render(
        request, "subscribers/settings.html", {"form": form, "settings": current, "sample": sample}
    )


urls = [path("settings/subscribers/", subscriber_settings, name="settings")]
