"""``suishenma-issuer status import FILE.csv``: status changes by the hundred thousand, from a health authority.

The file is UTF-8 CSV with a header naming its columns: ``subject`` or ``id_number`` (either may be
empty on a row, never both filled), ``status`` (green, yellow, red), and optionally ``reason`` and
``valid_until`` (POSIX seconds). It is read as a stream, ``BATCH`` rows at a time; each batch is one
transaction in which the good rows apply and the bad ones are counted, and which also records how far
the file has come (by the file's SHA-256). Run again after an interruption, it resumes after the last
batch that committed: no line is skipped or applied twice. Refused rows are written, with the line
their row starts on and the reason, to ``FILE.csv.refused.csv`` (mode 0600): an ID number only masked,
and a subject or status that is not one only starred out, since such a cell may hold an ID number put in
the wrong column. Each batch's refusals are on disk before it commits, so they survive a kill or a power
cut like the batch itself. The whole file is checked to be UTF-8 before anything applies. Status lists
are rebuilt once, on their next request.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import glob
import hashlib
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from issuer.errors import InputError, Problem
from issuer.files import FILE_MODE
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
    """The file's SHA-256 and its number of lines (for the progress bar), read once; the file must be UTF-8
    throughout, so that a bad byte deep in it cannot stop an import half applied.

    Raises:
        InputError: not UTF-8 (``csv_not_utf8``, naming the line and the byte offset where it breaks).
        OSError: the file cannot be read.
    """
    h, lines, offset = hashlib.sha256(), 0, 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            pending = decoder.getstate()[0]  # the start of a character cut by the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:  # exc.object is pending + block
                bad = offset - len(pending) + exc.start
                line = lines + block[: max(0, bad - offset)].count(b"\n") + 1
                raise InputError(Problem.CSV_NOT_UTF8, path=path, line=line, offset=bad) from None
            lines += block.count(b"\n")
            offset += len(block)
        pending = decoder.getstate()[0]
        if pending:  # the file ends inside a character
            raise InputError(Problem.CSV_NOT_UTF8, path=path, line=lines + 1, offset=offset - len(pending))
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


def _rows(path: Path) -> Iterator[tuple[int, int, dict[str, str | None]]]:
    """(the line a row starts on, the line it ends on, the row) for every data row: a quoted cell may hold
    line breaks. The header must name ``status`` and a person column.

    Raises: InputError: not UTF-8 CSV with such a header.
    """
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader, [])]
            if "status" not in header or not ({"subject", "id_number"} & set(header)):
                raise InputError(Problem.CSV_HEADER, path=path)
            end = reader.line_num
            for cells in reader:
                start, end = end + 1, reader.line_num
                if cells:  # a blank line is no row, as for csv.DictReader
                    row: dict[str, str | None] = dict(zip(header, cells, strict=False))
                    for name in header[len(cells) :]:
                        row[name] = None
                    yield start, end, row
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
        InputError: not UTF-8 (``csv_not_utf8``) or without the expected header (``csv_header``): nothing of
            it applied and a previous refused-rows file left as it was; or a row the CSV reader cannot read
            (``csv_unreadable``): the batches before it are kept.
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
    with _RefusedFile(refused_path, resume_line=start) as out:
        batch: list[StatusChange] = []
        lines: list[tuple[int, dict[str, str | None]]] = []
        bad: list[tuple[int, str, dict[str, str | None]]] = []
        last_line = start

        def flush(line: int) -> None:
            nonlocal applied, refused, batch, lines, bad
            written: list[tuple[int, str, dict[str, str | None]]] = []

            def mark(result: BatchResult) -> ImportMark:
                # inside the batch's transaction: its refusals are on disk before it commits
                failed = [(lines[pos][0], why, lines[pos][1]) for pos, why in result.failed]
                written[:] = sorted(bad + failed, key=lambda b: b[0])
                out.write_batch([[n, why, *_shown(row)] for n, why, row in written])
                return ImportMark(digest, line, applied + result.applied, refused + len(written))

            result = service.set_statuses(batch, now, actor, all_or_none=False, mark=mark)
            applied += result.applied
            refused += len(written)
            summary.reasons.update(why for _, why, _ in written)
            batch, lines, bad = [], [], []

        for first, line, row in _rows(path):
            if line <= start:
                continue
            summary.rows += 1
            parsed = parse_row(row, now)
            if isinstance(parsed, str):
                bad.append((first, parsed, row))
            else:
                batch.append(parsed)
                lines.append((first, row))
            last_line = line
            if len(batch) + len(bad) >= BATCH:
                flush(line)
                progress(line, total)
        if batch or bad or summary.rows == 0:
            flush(last_line)
        progress(total, total)
    summary.applied, summary.refused = applied, refused
    return summary


_HEADER = ["line", "reason", "subject", "id_number", "status"]


class _RefusedFile:
    """The refused-rows file, durable batch by batch.

    A run starts it as a temporary file beside it (created 0600): the header, or for a resumed run the
    previous file's rows up to the line the import had committed. Each batch's refused rows are written and
    fsynced from inside the batch's transaction, before it commits; the first batch then renames the
    temporary file over the real one (and fsyncs the folder), and later batches append to it in place. So
    the refusals of every committed batch are on disk under the real name, even after a kill or a power
    cut; a batch that never committed may have left its rows behind, and the next run, resuming before
    them, drops them. A run that fails before its first batch reaches its commit removes its temporary
    file and leaves a previous file as it was. Temporary files of runs that were killed are removed.
    """

    def __init__(self, path: Path, resume_line: int) -> None:
        self.path, self.resume_line, self.live = path, resume_line, False
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self.file: IO[str]
        self.writer: Any

    def __enter__(self) -> _RefusedFile:
        """Raises: OSError (the temporary file cannot be made, or the previous file not read)."""
        self._remove_leftovers()
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # also when the name was left over from a killed run
        self.file = open(fd, "w", encoding="utf-8", newline="")  # closed in __exit__
        self.writer = csv.writer(self.file)
        try:
            kept = self._committed_rows() if self.resume_line else None
            self.writer.writerows(kept if kept is not None else [_HEADER])
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _committed_rows(self) -> list[list[str]] | None:
        """The previous file's header and its rows up to the committed line, or None when there is none."""
        try:
            with self.path.open(encoding="utf-8", newline="") as previous:
                rows = list(csv.reader(previous))
        except FileNotFoundError:
            return None
        if not rows:
            return None
        return [rows[0], *(r for r in rows[1:] if not (r and r[0].isdigit() and int(r[0]) > self.resume_line))]

    def _remove_leftovers(self) -> None:
        """Remove temporary files beside it whose run is gone (killed before it could clean up)."""
        prefix, suffix = f".{self.path.name}.", ".tmp"
        for leftover in self.path.parent.glob(f"{glob.escape(prefix)}*{suffix}"):
            pid = leftover.name[len(prefix) : -len(suffix)]
            if not pid.isdigit() or _running(int(pid)):
                continue
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()

    def write_batch(self, rows: list[list[object]]) -> None:
        """Write a batch's refused rows and make them durable under the real name.

        Raises: OSError (they cannot be written, or the file renamed).
        """
        self.writer.writerows(rows)
        self.file.flush()
        os.fsync(self.file.fileno())
        if not self.live:
            os.replace(self.tmp, self.path)
            self.live = True
            _fsync_dir(self.path.parent)

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        """Raises: OSError (the file cannot be closed)."""
        self.file.close()
        if not self.live:
            with contextlib.suppress(FileNotFoundError):
                self.tmp.unlink()


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _shown(row: dict[str, str | None]) -> list[str]:
    """The subject, ID number and status of a refused row as the refused-rows file may show them: the ID
    number masked; a subject or status only when it is one, else starred out like a value that is no ID
    number (such a cell may hold an ID number put in the wrong column)."""
    subject = (row.get("subject") or "").strip()
    status = (row.get("status") or "").strip()
    return [
        subject if _SUBJECT.fullmatch(subject.lower()) else _stars(subject),
        _masked_id(row),
        status if status.lower() in STATUSES else _stars(status),
    ]


def _stars(value: str) -> str:
    return "*" * min(len(value), 32)


def _masked_id(row: dict[str, str | None]) -> str:
    """Refused rows are written back without the full ID number: the file of refusals is not the data. A
    value that is no ID number at all is starred out whole."""
    value = (row.get("id_number") or "").strip()
    try:
        return mask_id_number(value) if value else ""
    except UsageError:
        return _stars(value)
