"""Forms of the messaging pages: a template's text, the SMS gateway, the log's filters."""

import re

from django import forms

from ispops.messaging import services
from ispops.messaging.models import Channel, Message, SmsSettings


class TemplateForm(forms.Form):
    subject = forms.CharField(max_length=200, required=False)
    body = forms.CharField(
        label="Message",
        widget=forms.Textarea(attrs={"rows": 7}),
        help_text="Variables go in double braces, e.g. {{ customer.name }}.",
    )
    is_active = forms.BooleanField(
        label="Send this text",
        required=False,
        initial=True,
        help_text="Untick to send the default text again while keeping yours.",
    )

    def __init__(self, *args, channel: str, **kwargs):
        super().__init__(*args, **kwargs)
        if channel == Channel.SMS:
            del self.fields["subject"]
        else:
            self.fields["subject"].required = True

    def _checked(self, name):
        text = self.cleaned_data[name]
        try:
            services.check_template(text)
        except services.MessagingError as exc:
            raise forms.ValidationError(str(exc)) from None
        return text

    def clean_subject(self):
        return self._checked("subject")

    def clean_body(self):
        return self._checked("body")


class SmsSettingsForm(forms.ModelForm):
    # Write-only: the stored key is never put back into the page.
    api_key = forms.CharField(
        label="API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
    )

    base_url = forms.URLField(
        label=SmsSettings._meta.get_field("base_url").verbose_name,
        help_text=SmsSettings._meta.get_field("base_url").help_text,
        assume_scheme="https",
    )

    class Meta:
        model = SmsSettings
        fields = ["backend", "username", "api_key", "sender_id", "base_url"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        stored = bool(self.instance.api_key)
        self.fields["api_key"].help_text = (
            "Set. Leave blank to keep it; type a new one to replace it."
            if stored
            else "Not set. From your Africa's Talking account: Settings, API key."
        )

    def clean_api_key(self):
        # Blank keeps the stored key.
        return self.cleaned_data["api_key"] or self.instance.api_key

    def clean_sender_id(self):
        sender = self.cleaned_data["sender_id"].strip()
        if sender and not re.fullmatch(r"[A-Za-z0-9 ]{1,11}", sender):
            raise forms.ValidationError("Up to 11 letters, digits and spaces.")
        return sender

    def clean(self):
        data = super().clean()
        if data.get("backend") == SmsSettings.Backend.AFRICASTALKING:
            if not data.get("username"):
                self.add_error("username", "Africa's Talking needs the app username.")
            if not data.get("api_key"):
                self.add_error("api_key", "Africa's Talking needs the API key.")
        return data


class LogFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=100)
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *Message.State.choices])
    channel = forms.ChoiceField(required=False, choices=[("", "Any channel"), *Channel.choices])

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["q"].widget.attrs.update(
            {"placeholder": "Phone, email, name or account", "type": "search"}
        )


class CampaignForm(forms.Form):
    """A campaign's name and text (ispops.messaging.campaigns checks the rest)."""

    name = forms.CharField(max_length=120, help_text="For you; customers do not see it.")
    channel = forms.ChoiceField(choices=Channel.choices, initial=Channel.SMS)
    kind = forms.ChoiceField(
        label="Kind of message",
        help_text="Whose choices apply: offers go only to customers who said yes; "
        "reminders to all but those who turned them off; a service notice to everyone.",
    )
    subject = forms.CharField(max_length=200, required=False, help_text="Email only.")
    body = forms.CharField(
        label="Message",
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Variables go in double braces, e.g. {{ customer.first_name }}.",
    )

    def __init__(self, *args, **kwargs):
        from ispops.messaging.campaigns import kind_choices

        super().__init__(*args, **kwargs)
        self.fields["kind"].choices = kind_choices()

    def clean(self):
        data = super().clean()
        if data.get("channel") == Channel.EMAIL and not (data.get("subject") or "").strip():
            self.add_error("subject", "An email needs a subject.")
        for name in ("subject", "body"):
            if data.get(name):
                try:
                    services.check_template(data[name])
                except services.MessagingError as exc:
                    self.add_error(name, str(exc))
        return data
