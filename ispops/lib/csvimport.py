"""CSV imports, all rows or none: the report of bad rows (with line numbers), reading
the rows of a file, and what the import commands share (reading the file, printing the
report). Subscribers, plans and inventory items are imported through these, so every
import accepts and refuses files the same way."""

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management.base import CommandError


@dataclass
class ImportReport:
    total: int = 0
    created: int = 0
    unchanged: int = 0
    errors: list[dict] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, line: int, reason: str) -> None:
        self.errors.append({"line": line, "reason": reason})

    def summary(self) -> str:
        if self.errors:
            return f"{len(self.errors)} bad row(s) in {self.total}; nothing imported"
        verb = "would import" if self.dry_run else "imported"
        extra = f", {self.unchanged} already there" if self.unchanged else ""
        return f"{verb} {self.created} of {self.total} row(s){extra}"


def read_rows(text: str, required: list[str], optional: list[str], report: ImportReport):
    """(line number, {column: value}) for every non-blank data row; a missing column is
    one error on line 1 and no rows."""
    text = text.lstrip("\ufeff")  # Excel's UTF-8 byte-order mark
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        report.add(1, "the file is empty")
        return []
    names = [h.strip().lower() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        report.add(1, f"missing column(s): {', '.join(missing)}")
        return []
    dupes = {n for n in names if n and names.count(n) > 1}
    if dupes:
        report.add(1, f"column(s) given twice: {', '.join(sorted(dupes))}")
        return []
    wanted = {n: i for i, n in enumerate(names) if n in required or n in optional}
    rows = []
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # a runaway quote, a field over the csv module's limit
            report.add(reader.line_num, f"cannot read this line: {exc}")
            break
        line = reader.line_num
        if not any(v.strip() for v in values):
            continue
        if len(values) > len(names):
            report.add(line, f"{len(values)} values for {len(names)} columns")
            continue
        values = values + [""] * (len(names) - len(values))
        rows.append((line, {n: values[i].strip() for n, i in wanted.items()}))
    report.total = len(rows)
    return rows


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
