"""Kenyan phone numbers in the one form M-Pesa and SMS gateways use: 2547XXXXXXXX or
2541XXXXXXXX (country code, no plus, no spaces)."""

import phonenumbers

DEFAULT_REGION = "KE"


class InvalidPhone(ValueError):
    """The text is not a usable mobile number; str() says why."""


def normalise_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """'0712 345 678', '+254712345678', '712345678', '254112345678' -> '2547...'/'2541...'."""
    text = (raw or "").strip()
    if not text:
        raise InvalidPhone("phone number is empty")
    digits = "".join(ch for ch in text if ch.isdigit())
    # Nine digits starting 7 or 1 is how people often write a Kenyan mobile.
    if len(digits) == 9 and digits[0] in "71" and not text.startswith("+"):
        text = "0" + digits
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhone(f"not a phone number: {raw!r}") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"not a valid phone number: {raw!r}")
    if number.country_code != 254:
        raise InvalidPhone(f"not a Kenyan number: {raw!r}")
    national = str(number.national_number)
    if national[0] not in "71":
        raise InvalidPhone(f"not a mobile number: {raw!r}")
    return f"254{national}"
