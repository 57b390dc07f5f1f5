"""Shared by import_plans and import_subscribers: read the file, print the report."""

from pathlib import Path

from django.core.management.base import CommandError


def read_csv_file(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        raise CommandError(f"no such file: {path}")
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise CommandError(f"{path} is not UTF-8 text; save the CSV as UTF-8") from None


def finish(command, report) -> None:
    """Print every bad row, then fail with a one-line reason; or print the summary."""
    for error in report.errors:
        command.stderr.write(f"line {error['line']}: {error['reason']}")
    if report.errors:
        raise CommandError(report.summary())
    command.stdout.write(report.summary())
