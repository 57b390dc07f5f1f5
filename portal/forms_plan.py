"""The portal's plan-change confirmation: a signed copy of the quote the subscriber was
shown (moment, net amount, at once or scheduled), so the change confirmed is the one
priced, and an old or altered quote is priced again instead."""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django import forms
from django.core import signing

SALT = "portal.plan-quote"
# How long a quote may be confirmed: the change is made at the quote's moment, so this
# is also how far back a change at once may be dated.
QUOTE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Quoted:
    at: datetime
    net: Decimal
    scheduled: bool


def sign_quote(quote) -> str:
    """The token for a subscribers.plan_changes.Quote."""
    return signing.dumps(
        {
            "a": quote.account.pk,
            "p": quote.plan.pk,
            "t": quote.at.isoformat(),
            "n": str(quote.preview.net),
            "s": quote.scheduled,
        },
        salt=SALT,
    )


class ConfirmForm(forms.Form):
    quote = forms.CharField(widget=forms.HiddenInput, max_length=1000)

    def __init__(self, *args, account, plan, **kwargs):
        super().__init__(*args, **kwargs)
        self.account, self.plan = account, plan

    def clean_quote(self) -> Quoted:
        try:
            data = signing.loads(self.cleaned_data["quote"], salt=SALT, max_age=QUOTE_SECONDS)
        except signing.SignatureExpired:
            raise forms.ValidationError("That price is more than 15 minutes old.") from None
        except signing.BadSignature:
            raise forms.ValidationError("That price is not one we gave.") from None
        try:
            if (data["a"], data["p"]) != (self.account.pk, self.plan.pk):
                raise forms.ValidationError("That price is for another change.")
            return Quoted(datetime.fromisoformat(data["t"]), Decimal(data["n"]), bool(data["s"]))
        except (KeyError, TypeError, ValueError, InvalidOperation):
            raise forms.ValidationError("That price is not one we gave.") from None
