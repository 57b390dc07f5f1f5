"""The portal's ticket forms: a new request and a reply, each with an optional photo
from the phone's camera."""

from django import forms

from tickets import services as tickets
from tickets.models import Category

MAX_TEXT = 2000


class _PhotoForm(forms.Form):
    photo = forms.FileField(
        label="Photo (optional)",
        required=False,
        widget=forms.FileInput(attrs={"accept": "image/*", "capture": "environment"}),
        help_text="For example the router's lights or the error on the screen.",
    )

    def clean_photo(self):
        photo = self.cleaned_data.get("photo")
        if photo:
            try:
                tickets.check_photo(photo)
            except tickets.TicketError as exc:
                raise forms.ValidationError(str(exc).capitalize() + ".") from None
        return photo or None


class NewTicketForm(_PhotoForm):
    category = forms.ChoiceField(label="What is it about?", choices=Category.choices)
    description = forms.CharField(
        label="Tell us what happened",
        max_length=MAX_TEXT,
        widget=forms.Textarea(attrs={"rows": 4}),
    )

    field_order = ["category", "description", "photo"]


class ReplyForm(_PhotoForm):
    body = forms.CharField(
        label="Your reply", max_length=MAX_TEXT, widget=forms.Textarea(attrs={"rows": 3})
    )

    field_order = ["body", "photo"]
