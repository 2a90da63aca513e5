"""``suishenma-issuer status import FILE.csv``: status changes by the hundred thousand, from a health authority.

The file is UTF-8 CSV with a header naming its columns: ``subject`` or ``id_number`` (either may be
empty on a row, never both filled), ``status`` (green, yellow, red), and optionally ``reason`` and
``valid_until`` (POSIX seconds). It is read as a stream, ``BATCH`` rows at a time; each batch is one
transaction in which the good rows apply and the bad ones are counted, and which also records how far
the file has come (by the file's SHA-256). Run again after an interruption, it resumes after the last
batch that committed: no line is skipped or applied twice. Refused rows are written, with their line
number and reason, to ``FILE.csv.refused.csv``. Status lists are rebuilt once, on their next request.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from issuer.errors import InputError, Problem
from issuer.service import IssuerService
from issuer.storage import BatchResult, ImportMark, StatusChange
from suishenma import UsageError, check_display_text
from suishenma.masking import mask_id_number

BATCH = 5_000
STATUSES = ("green", "yellow", "red")
_SUBJECT = re.compile(r"[0-9a-f]{16}")
_ID_NUMBER = re.compile(r"[0-9A-Za-z]{1,32}")
MAX_REASON = 200


@dataclass
class ImportSummary:
    file: str
    rows: int = 0  # data rows read in this run
    applied: int = 0  # totals over every run of this file
    refused: int = 0
    resumed_at_line: int = 0
    reasons: Counter[str] = field(default_factory=Counter)  # this run's refusals by reason
    refused_file: str = ""

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "rows_read": self.rows,
            "applied": self.applied,
            "refused": self.refused,
            "resumed_at_line": self.resumed_at_line,
            "refused_by_reason": dict(sorted(self.reasons.items())),
            "refused_file": self.refused_file,
        }


def file_digest(path: Path) -> tuple[str, int]:
    """The file's SHA-256 and its number of lines (for the progress bar). Raises: OSError."""
    h, lines = hashlib.sha256(), 0
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            lines += block.count(b"\n")
    return h.hexdigest(), lines


def parse_row(row: dict[str, str | None], now: int) -> StatusChange | str:
    """The change a row asks for, or the reason it is refused (``bad_status``, ``bad_subject``,
    ``bad_id_number``, ``no_person``, ``two_people``, ``bad_reason``, ``bad_valid_until``)."""
    subject = (row.get("subject") or "").strip().lower()
    id_number = (row.get("id_number") or "").strip()
    status = (row.get("status") or "").strip().lower()
    reason = (row.get("reason") or "").strip()
    until_text = (row.get("valid_until") or "").strip()
    if status not in STATUSES:
        return "bad_status"
    if subject and id_number:
        return "two_people"
    if not subject and not id_number:
        return "no_person"
    if subject and not _SUBJECT.fullmatch(subject):
        return "bad_subject"
    if id_number and not _ID_NUMBER.fullmatch(id_number):
        return "bad_id_number"
    if len(reason) > MAX_REASON:
        return "bad_reason"
    try:
        check_display_text(reason, "reason")
    except UsageError:
        return "bad_reason"
    until = None
    if until_text:
        if not until_text.isdigit() or len(until_text) > 15 or int(until_text) <= now:
            return "bad_valid_until"
        until = int(until_text)
    return StatusChange(status, reason, until, subject=subject or None, id_number=id_number or None)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, str | None]]]:
    """(line number, row) for every data row; the header must name ``status`` and a person column.

    Raises: InputError: not UTF-8 CSV with such a header.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "status" not in header or not ({"subject", "id_number"} & set(header)):
            raise InputError(Problem.CSV_HEADER, path=path)
        reader.fieldnames = header
        try:
            for row in reader:
                yield reader.line_num, row  # type: ignore[misc]
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(Problem.CSV_UNREADABLE, path=path, line=reader.line_num + 1, error=exc) from None


def import_statuses(
    service: IssuerService,
    path: Path,
    now: int,
    actor: str,
    progress: Callable[[int, int], None] = lambda line, total: None,
) -> ImportSummary:
    """Apply the file's changes, resuming after the last batch a previous run committed.

    ``progress(lines done, lines in the file)`` is called after each batch.

    Raises:
        InputError: not a readable CSV file with the expected header (nothing of it applied).
        StorageUnavailable: the database went away; what committed is kept and a rerun resumes there.
        OSError: the file cannot be read.
    """
    digest, total = file_digest(path)
    held = service.storage.import_mark(digest)
    start = held.line if held else 0
    summary = ImportSummary(str(path), resumed_at_line=start)
    applied, refused = (held.applied, held.failed) if held else (0, 0)
    refused_path = path.with_name(path.name + ".refused.csv")
    summary.refused_file = str(refused_path)
    with refused_path.open("a" if start else "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        if not start:
            writer.writerow(["line", "reason", "subject", "id_number", "status"])
        batch: list[StatusChange] = []
        lines: list[tuple[int, dict[str, str | None]]] = []
        bad: list[tuple[int, str, dict[str, str | None]]] = []
        last_line = start

        def flush(line: int) -> None:
            nonlocal applied, refused, batch, lines, bad
            failed_before = len(bad)

            def mark(result: BatchResult) -> ImportMark:
                return ImportMark(digest, line, applied + result.applied, refused + failed_before + len(result.failed))

            result = service.set_statuses(batch, now, actor, all_or_none=False, mark=mark)
            for pos, why in result.failed:
                bad.append((lines[pos][0], why, lines[pos][1]))
            applied += result.applied
            refused += len(bad)
            for n, why, row in sorted(bad, key=lambda b: b[0]):
                summary.reasons[why] += 1
                writer.writerow([n, why, row.get("subject") or "", _masked_id(row), row.get("status") or ""])
            out.flush()
            batch, lines, bad = [], [], []

        for line, row in _rows(path):
            if line <= start:
                continue
            summary.rows += 1
            parsed = parse_row(row, now)
            if isinstance(parsed, str):
                bad.append((line, parsed, row))
            else:
                batch.append(parsed)
                lines.append((line, row))
            last_line = line
            if len(batch) + len(bad) >= BATCH:
                flush(line)
                progress(line, total)
        if batch or bad or summary.rows == 0:
            flush(last_line)
        progress(total, total)
    summary.applied, summary.refused = applied, refused
    return summary


def _masked_id(row: dict[str, str | None]) -> str:
    """Refused rows are written back without the full ID number: the file of refusals is not the data. A
    value that is no ID number at all is starred out whole."""
    value = (row.get("id_number") or "").strip()
    try:
        return mask_id_number(value) if value else ""
    except UsageError:
        return "*" * min(len(value), 32)
