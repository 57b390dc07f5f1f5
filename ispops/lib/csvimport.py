"""CSV imports, all rows or none: the report of bad rows (with line numbers), reading
the rows of a file, and what the import commands share (reading the file, printing the
report). Subscribers, plans and inventory items are imported through these, so every
import accepts and refuses files the same way."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.core.management.base import CommandError

# The csv module refuses a field over 131,072 characters with csv.Error; no real cell
# comes near this, so a longer one is reported as a bad file, never raised.
MAX_FIELD_CHARS = 10_000


class CsvError(ValueError):
    """A file the csv module cannot read; str() says why, `line` says where."""

    def __init__(self, line: int, reason: str):
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


def csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) for every record of `text`, whatever its line ends (\\n,
    \\r\\n or a lone \\r); CsvError for a runaway quote or an overlong cell. Every CSV
    import reads its file through this, so all of them refuse the same files the same
    way."""
    # newline="": the csv module itself splits records, on any line end, and keeps line
    # breaks inside quoted cells.
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvError(reader.line_num or 1, _reason(exc)) from None
        for value in cells:
            if len(value) > MAX_FIELD_CHARS:
                raise CsvError(
                    reader.line_num, f"a value is over {MAX_FIELD_CHARS:,} characters long"
                )
        yield reader.line_num, cells


def _reason(exc: csv.Error) -> str:
    message = str(exc)
    if "field larger than field limit" in message:
        return f"a value is over {MAX_FIELD_CHARS:,} characters long"
    return f"cannot read this line ({message})"


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
    records = csv_rows(text)
    try:
        header = next(records, None)
        if header is None:
            report.add(1, "the file is empty")
            return []
        _, header_cells = header
        names = [h.strip().lower() for h in header_cells]
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
        for line, values in records:
            if not any(v.strip() for v in values):
                continue
            if len(values) > len(names):
                report.add(line, f"{len(values)} values for {len(names)} columns")
                continue
            values = values + [""] * (len(names) - len(values))
            rows.append((line, {n: values[i].strip() for n, i in wanted.items()}))
    except CsvError as exc:  # a runaway quote, an overlong cell: the file is refused
        report.add(exc.line, exc.reason)
        return []
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
