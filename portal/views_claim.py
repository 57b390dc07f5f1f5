"""The portal's "I already paid" page: the subscriber types the M-Pesa code of a payment
that is not on their account; portal.claims decides what comes of it, and the page
says so in plain words (after a redirect, so a reload sends nothing twice)."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone

from ispops.staff.forms import client_ip
from portal import claims
from portal.forms_claim import ClaimForm
from portal.models import PaymentClaim
from portal.pages import customer_page, render_page

Outcome = PaymentClaim.Outcome

# What each past claim came to, for the list under the form.
SHOWN = {
    Outcome.MATCHED: "Already on your account",
    Outcome.ASSIGNED: "Added to your account",
    Outcome.TICKET: "Sent to our finance team",
    Outcome.REFUSED: "Not accepted",
}
NOT_HERE = (
    "This code cannot be claimed from this account. If you made this payment, "
    "open a ticket under Help and tell us about it."
)
LIMITED = (
    "You have sent many codes today. Try again tomorrow, or open a ticket under Help "
    "and tell us about your payment."
)


@customer_page
def claim(request):
    visit = request.visit
    form = ClaimForm(request.POST or None, signed_in_phone=visit.phone)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                row = claims.claim(
                    visit.customer,
                    code=data["code"],
                    amount=data["amount"],
                    phone=data["phone"],
                    ip=client_ip(request),
                    now=timezone.now(),
                    actor=f"subscriber {visit.phone}",
                )
            except claims.Limited:
                form.add_error(None, LIMITED)
                status = 429
            else:
                messages.info(request, _said(visit.customer, row))
                return redirect("portal:claim")
        else:
            status = 400
    context = {
        "form": form,
        "past": [(c, SHOWN[c.outcome]) for c in claims.recent_claims(visit.customer)],
    }
    return render_page(request, "portal/claim.html", context, status=status)


def _said(customer, row: PaymentClaim) -> str:
    """What the subscriber is told about their claim; a refusal never says whose the
    code or the money is."""
    if row.outcome == Outcome.MATCHED:
        return (
            f"Your payment {row.code} of KES {row.payment.amount:,.2f} is already on your "
            f"account. Nothing more to do."
        )
    if row.outcome == Outcome.ASSIGNED:
        return (
            f"Found it: your payment {row.code} of KES {row.payment.amount:,.2f} is now on "
            f"your account. Thank you!"
        )
    if row.outcome == Outcome.TICKET:
        return (
            f"We could not match {row.code} to a payment ourselves, so we opened ticket "
            f"{row.ticket.number} for our finance team. They will check it and get back "
            f"to you."
        )
    if row.detail == claims.PROCESSING:
        return (
            f"Your payment {row.code} has just reached us and is still being processed. "
            f"Check your account again in a few minutes."
        )
    if row.detail == claims.CLAIMED_HERE:
        earlier = claims.earlier_claim(customer, row.code)
        if earlier is not None:
            what = SHOWN[earlier.outcome].lower()
            if earlier.ticket_id:
                what += f" (ticket {earlier.ticket.number})"
            return (
                f"You sent {row.code} before, on {timezone.localtime(earlier.at):%-d %b}: {what}."
            )
    return NOT_HERE


urls = [path("my/claim/", claim, name="claim")]
