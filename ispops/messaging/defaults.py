"""The default text of every message template ispops sends (SMS, e-mail subject and
body), keyed by template key: what a template says until the ISP edits it, and what an
edited template that lost a required value falls back to. Rendered by
ispops.messaging.services; every key belongs to a kind in ispops.messaging.preferences.
"""

from dataclasses import dataclass

from ispops.messaging.models import Channel


@dataclass(frozen=True)
class DefaultTemplate:
    label: str
    sms: str
    email_subject: str
    email_body: str
    # What the caller puts in the context besides customer and isp_name (shown to
    # whoever edits the template).
    variables: tuple[str, ...] = ()

    def text(self, channel: str) -> tuple[str, str]:
        if channel == Channel.SMS:
            return "", self.sms
        return self.email_subject, self.email_body


_PAY = "Pay via M-Pesa paybill {{ paybill }}, account {{ customer.account }}"
_SIGN = "\n\nThank you,\n{{ isp_name }}"

DEFAULT_TEMPLATES: dict[str, DefaultTemplate] = {
    "invoice_issued": DefaultTemplate(
        label="Invoice issued",
        sms="{{ customer.name }}, invoice {{ invoice.number }} of {{ amount }} is due "
        "{{ due_on }}. Paybill {{ paybill }}, account {{ customer.account }}. "
        "{{ link }}",
        email_subject="Invoice {{ invoice.number }} from {{ isp_name }}",
        email_body="Dear {{ customer.name }},\n\nInvoice {{ invoice.number }} of {{ amount }} "
        "is due on {{ due_on }}.\n\n" + _PAY + "." + _SIGN,
        # link: the invoice's PDF by a signed link that expires (billing.links).
        variables=("invoice.number", "amount", "due_on", "paybill", "link"),
    ),
    "payment_reminder_before": DefaultTemplate(
        label="Payment reminder (before due date)",
        sms="{{ customer.name }}, your {{ isp_name }} bill of {{ amount }} is due "
        "{{ due_on }}. " + _PAY + " to stay connected.",
        email_subject="Your {{ isp_name }} bill is due on {{ due_on }}",
        email_body="Dear {{ customer.name }},\n\nThis is a reminder that your bill of "
        "{{ amount }} is due on {{ due_on }}.\n\n" + _PAY + " to stay connected." + _SIGN,
        variables=("amount", "due_on", "paybill"),
    ),
    "payment_reminder_after": DefaultTemplate(
        label="Payment reminder (overdue)",
        sms="{{ customer.name }}, your {{ isp_name }} bill of {{ amount }} was due "
        "{{ due_on }} and is still unpaid. " + _PAY + " to avoid disconnection.",
        email_subject="Your {{ isp_name }} bill is overdue",
        email_body="Dear {{ customer.name }},\n\nYour bill of {{ amount }} was due on "
        "{{ due_on }} and is still unpaid.\n\n" + _PAY + " to avoid disconnection." + _SIGN,
        variables=("amount", "due_on", "paybill"),
    ),
    "suspended_soft": DefaultTemplate(
        label="Service limited (unpaid)",
        sms="{{ customer.name }}, your internet is limited because {{ amount }} is unpaid. "
        + _PAY
        + " and you are reconnected automatically.",
        email_subject="Your {{ isp_name }} internet is limited",
        email_body="Dear {{ customer.name }},\n\nYour internet is limited because {{ amount }} "
        "is unpaid.\n\n" + _PAY + " and you are reconnected automatically." + _SIGN,
        variables=("amount", "paybill"),
    ),
    "suspended_hard": DefaultTemplate(
        label="Service disconnected (unpaid)",
        sms="{{ customer.name }}, your internet has been disconnected for non-payment of "
        "{{ amount }}. " + _PAY + " to reconnect.",
        email_subject="Your {{ isp_name }} internet has been disconnected",
        email_body="Dear {{ customer.name }},\n\nYour internet has been disconnected for "
        "non-payment of {{ amount }}.\n\n" + _PAY + " to reconnect." + _SIGN,
        variables=("amount", "paybill"),
    ),
    "expiry_reminder": DefaultTemplate(
        label="Package expiring (prepaid)",
        sms="{{ customer.name }}, your {{ plan }} package expires "
        '{{ expires_at|date:"j M, H:i" }}. Renew with {{ amount }}: ' + _PAY + ".",
        email_subject="Your {{ plan }} package expires soon",
        email_body="Dear {{ customer.name }},\n\nYour {{ plan }} package expires on "
        '{{ expires_at|date:"j M Y, H:i" }}.\n\nRenew with {{ amount }}: ' + _PAY + "." + _SIGN,
        variables=("plan", "expires_at", "amount", "paybill"),
    ),
    "payment_received": DefaultTemplate(
        label="Payment received",
        sms="{{ customer.name }}, we have received {{ amount }} (ref {{ receipt }}). "
        "Balance: {{ balance }}. Thank you, {{ isp_name }}.",
        email_subject="Payment received: {{ amount }}",
        email_body="Dear {{ customer.name }},\n\nWe have received your payment of {{ amount }} "
        "(ref {{ receipt }}) for account {{ customer.account }}.\n\n"
        "Your balance is now {{ balance }}." + _SIGN,
        variables=("amount", "receipt", "balance"),
    ),
    # A new customer signed up and in service (subscribers.services.sign_up).
    "welcome": DefaultTemplate(
        label="Welcome (new customer)",
        sms="{{ customer.name }}, welcome to {{ isp_name }}! Account {{ customer.account }}, "
        "plan {{ plan }}{% if login %}, login {{ login }}{% endif %}."
        '{% if expires_at %} Paid to {{ expires_at|date:"j M" }}.{% endif %}'
        "{% if paybill %} Pay: paybill {{ paybill }}, account {{ customer.account }}."
        "{% endif %}",
        email_subject="Welcome to {{ isp_name }}",
        email_body="Dear {{ customer.name }},\n\nWelcome to {{ isp_name }}. Your account "
        "number is {{ customer.account }} and your plan is {{ plan }}."
        "{% if login %}\n\nYour internet login (PPPoE username) is {{ login }}.{% endif %}"
        "{% if expires_at %}\n\nYour service is paid until "
        '{{ expires_at|date:"j M Y, H:i" }}.{% endif %}'
        "\n\n{% if paybill %}Pay via M-Pesa paybill {{ paybill }}, account "
        "{{ customer.account }}.{% else %}When you pay, quote account number "
        "{{ customer.account }}.{% endif %}" + _SIGN,
        # login: the PPPoE or hotspot username (never the password: the message log
        # keeps the text); expires_at: a prepaid account's paid-until, else empty.
        variables=("plan", "login", "expires_at", "paybill"),
    ),
    "service_restored": DefaultTemplate(
        label="Service restored",
        sms="{{ customer.name }}, your internet is back on. Thank you for your payment. "
        "{{ isp_name }}",
        email_subject="Your {{ isp_name }} internet is back on",
        email_body="Dear {{ customer.name }},\n\nYour internet is back on. Thank you for your "
        "payment." + _SIGN,
    ),
    # A hotspot voucher sent to the buyer's phone (hotspot.vouchers.send_card_sms),
    # who may be nobody's customer record.
    "hotspot_voucher": DefaultTemplate(
        label="Hotspot: voucher code",
        sms='{{ customer.name|default:"Hello" }}, your {{ isp_name }} Wi-Fi code is {{ code }} '
        "({{ package }}, {{ validity }}). Enter it on the Wi-Fi page: {{ link }}",
        email_subject="Your {{ isp_name }} Wi-Fi voucher",
        email_body='Dear {{ customer.name|default:"customer" }},\n\nYour Wi-Fi voucher code '
        "is {{ code }}: {{ package }}, {{ validity }} ({{ amount }}).\n\nJoin the Wi-Fi and "
        "enter the code on the page that opens, or open {{ link }}" + _SIGN,
        variables=("code", "package", "validity", "amount", "link"),
    ),
    # Support tickets (tickets app)
    "ticket_opened": DefaultTemplate(
        label="Ticket opened",
        sms="{{ customer.name }}, we have received your request {{ ticket }}: {{ subject }}. "
        "We will get back to you soon. {{ isp_name }}",
        email_subject="We have received your request {{ ticket }}",
        email_body="Dear {{ customer.name }},\n\nWe have received your request {{ ticket }}: "
        "{{ subject }}.\n\nWe will get back to you soon." + _SIGN,
        variables=("ticket", "subject"),
    ),
    "ticket_comment": DefaultTemplate(
        label="Ticket update",
        sms="{{ customer.name }}, about {{ ticket }}: {{ comment }} {{ isp_name }}",
        email_subject="Update on your request {{ ticket }}",
        email_body="Dear {{ customer.name }},\n\n{{ comment }}\n\n"
        "(Request {{ ticket }}: {{ subject }})" + _SIGN,
        variables=("ticket", "subject", "comment"),
    ),
    "ticket_resolved": DefaultTemplate(
        label="Ticket resolved",
        sms="{{ customer.name }}, your request {{ ticket }} ({{ subject }}) is resolved. "
        "Call us if the problem comes back. {{ isp_name }}",
        email_subject="Your request {{ ticket }} is resolved",
        email_body="Dear {{ customer.name }},\n\nYour request {{ ticket }} ({{ subject }}) "
        "is resolved. Call us if the problem comes back." + _SIGN,
        variables=("ticket", "subject"),
    ),
    "outage_opened": DefaultTemplate(
        label="Outage in the customer's area",
        sms="{{ customer.name }}, there is a service interruption in your area ({{ site }}): "
        "{{ subject }}. We are working on it. Ref {{ ticket }}. {{ isp_name }}",
        email_subject="Service interruption in your area",
        email_body="Dear {{ customer.name }},\n\nThere is a service interruption in your area "
        "({{ site }}): {{ subject }}.\n\nOur team is working on it (ref {{ ticket }})." + _SIGN,
        variables=("ticket", "subject", "site"),
    ),
    "outage_resolved": DefaultTemplate(
        label="Outage over",
        sms="{{ customer.name }}, the service interruption in your area ({{ site }}) is "
        "over. Restart your router if you are still offline. {{ isp_name }}",
        email_subject="Service restored in your area",
        email_body="Dear {{ customer.name }},\n\nThe service interruption in your area "
        "({{ site }}) is over. Restart your router if you are still offline." + _SIGN,
        variables=("ticket", "subject", "site"),
    ),
    # Subscriber portal (portal app): the sign-in code, sent to the phone that was typed.
    "portal_contact_changed": DefaultTemplate(
        label="Portal: contact details changed",
        sms="{{ customer.name }}, your {{ isp_name }} account's {{ changes }} in the "
        "portal. If this was not you, call us at once.",
        email_subject="Your {{ isp_name }} contact details changed",
        email_body="Dear {{ customer.name }},\n\nYour account's {{ changes }} in the portal. "
        "If this was not you, call us at once." + _SIGN,
        # changes: e.g. "other phone now 0722•••002, email changed"
        variables=("changes",),
    ),
    # Hotspot (hotspot.usage): to the phone that bought a package with a data limit,
    # which may be nobody's customer record (then customer.name is empty).
    "hotspot_data_warning": DefaultTemplate(
        label="Hotspot: data running low",
        sms='{{ customer.name|default:"Hello" }}, you have used {{ percent }}% of the data '
        "in your {{ package }} Wi-Fi package; {{ left }} left. {{ isp_name }}",
        email_subject="Your {{ package }} data is running low",
        email_body='Dear {{ customer.name|default:"customer" }},\n\nYou have used '
        "{{ percent }}% of the data in your {{ package }} Wi-Fi package; {{ left }} "
        "left." + _SIGN,
        variables=("package", "percent", "left"),
    ),
    "hotspot_data_used_up": DefaultTemplate(
        label="Hotspot: data used up",
        sms='{{ customer.name|default:"Hello" }}, the data in your {{ package }} Wi-Fi '
        "package is used up. Buy another on the Wi-Fi page to stay online. {{ isp_name }}",
        email_subject="Your {{ package }} data is used up",
        email_body='Dear {{ customer.name|default:"customer" }},\n\nThe data in your '
        "{{ package }} Wi-Fi package is used up. Buy another on the Wi-Fi page to stay "
        "online." + _SIGN,
        variables=("package",),
    ),
    # PPPoE fair usage (network.fup): the plan's data allowance for the period.
    "data_cap_warning": DefaultTemplate(
        label="Data allowance running low",
        sms="{{ customer.name }}, you have used {{ percent }}% of this period's data on your "
        "{{ plan }} plan; {{ left }} left. {{ isp_name }}",
        email_subject="You have used {{ percent }}% of your {{ plan }} data",
        email_body="Dear {{ customer.name }},\n\nYou have used {{ percent }}% of this "
        "period's data on your {{ plan }} plan; {{ left }} left." + _SIGN,
        variables=("plan", "percent", "left"),
    ),
    "data_cap_used_up": DefaultTemplate(
        label="Data allowance used up",
        sms="{{ customer.name }}, this period's data on your {{ plan }} plan is used up. "
        "{% if slowed %}Your speed is now {{ fup_speed }}{% else %}Your internet is paused"
        "{% endif %} until the next period or a top-up. {{ isp_name }}",
        email_subject="Your {{ plan }} data is used up",
        email_body="Dear {{ customer.name }},\n\nThis period's data on your {{ plan }} plan "
        "is used up. {% if slowed %}Your speed is now {{ fup_speed }}{% else %}Your "
        "internet is paused{% endif %} until the next period or a top-up." + _SIGN,
        variables=("plan", "slowed", "fup_speed"),
    ),
    "portal_code": DefaultTemplate(
        label="Portal sign-in code",
        sms="{{ customer.name }}, your {{ isp_name }} sign-in code is {{ code }}. It works "
        "for {{ minutes }} minutes. Do not share it with anyone.",
        email_subject="Your {{ isp_name }} sign-in code",
        email_body="Dear {{ customer.name }},\n\nYour sign-in code is {{ code }}. It works for "
        "{{ minutes }} minutes. Do not share it with anyone." + _SIGN,
        variables=("code", "minutes"),
    ),
    # The captive page (hotspot.captive_phone): a code proving the phone typed there,
    # for the free trial or to join a package that phone bought; often nobody's
    # customer record (then customer.name is empty).
    "hotspot_phone_code": DefaultTemplate(
        label="Hotspot: phone code",
        sms='{{ customer.name|default:"Hello" }}, your {{ isp_name }} Wi-Fi code to {{ why }} '
        "is {{ code }}. It works for {{ minutes }} minutes.",
        email_subject="Your {{ isp_name }} Wi-Fi code",
        email_body='Dear {{ customer.name|default:"customer" }},\n\nYour Wi-Fi code to '
        "{{ why }} is {{ code }}. It works for {{ minutes }} minutes." + _SIGN,
        # why: what the code is for, e.g. "start your free trial".
        variables=("code", "minutes", "why"),
    ),
}
