"""The portal's settings page: contact details the subscriber may change (email, other
phone; saved through subscribers.services.update_customer, so audited), a link to the
password page, and which messages they get (ispops.messaging.preferences: only the kinds
the law lets them refuse can be turned off; the others are shown as always sent)."""

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.http import require_POST

from ispops.messaging import preferences
from portal import contacts
from portal.forms_profile import ContactForm, PreferencesForm, local_phone
from portal.pages import customer_page, render_page
from portal.tickets import customer_actor
from subscribers import services as subscribers


def _page(request, *, contact=None, prefs=None, status=200):
    customer = request.visit.customer
    contact = contact or ContactForm(customer=customer, signed_in_with=request.visit.phone)
    prefs = prefs or PreferencesForm(choices=preferences.choices_for(customer))
    context = {
        "contact": contact,
        "prefs": prefs,
        "always": [kind for kind in preferences.KINDS if not kind.optional],
        "customer": customer,
        "main_phone": local_phone(customer.phone),
    }
    return render_page(request, "portal/settings.html", context, status=status)


@customer_page
def profile(request):
    """GET: the page; POST: save the contact details."""
    if request.method != "POST":
        return _page(request)
    customer = request.visit.customer
    form = ContactForm(request.POST, customer=customer, signed_in_with=request.visit.phone)
    if not form.is_valid():
        return _page(request, contact=form, status=400)
    changes = form.changes()
    if changes:
        try:
            contacts.change_contacts(customer, changes, actor=customer_actor(customer))
        except subscribers.SubscriberError as exc:
            form.add_error(None, str(exc))
            return _page(request, contact=form, status=400)
        messages.success(request, "Your contact details are saved.")
    else:
        messages.info(request, "Nothing changed.")
    return redirect("portal:profile")


@customer_page
@require_POST
def notifications(request):
    customer = request.visit.customer
    form = PreferencesForm(request.POST, choices=preferences.choices_for(customer))
    if not form.is_valid():
        return _page(request, prefs=form, status=400)
    try:
        changed = preferences.set_preferences(
            customer, form.wanted(), actor=customer_actor(customer)
        )
    except preferences.PreferenceError as exc:
        form.add_error(None, str(exc).capitalize() + ".")
        return _page(request, prefs=form, status=400)
    messages.success(request, "Your choices are saved." if changed else "Nothing changed.")
    return redirect("portal:profile")


urls = [
    path("my/settings/", profile, name="profile"),
    path("my/settings/notifications/", notifications, name="notifications"),
]
