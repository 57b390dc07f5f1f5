"""CSV files for download. Staff open them in a spreadsheet, and much of what they hold
was typed by someone else (customers' names, payers' references, tags, uploaded
values): a cell starting with = + - @ (or a tab or CR before one) would run as a
formula there, so every text cell goes through `cell()`."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value) -> str:
    """`value` as a cell a spreadsheet shows as text: a leading quote defuses a formula."""
    value = "" if value is None else str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def row(values) -> list[str]:
    """Every value of a row through cell()."""
    return [cell(value) for value in values]
