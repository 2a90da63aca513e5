"""Printable paper codes in bulk: one image per person and one A4 sheet to print them all."""

from __future__ import annotations

import csv
import html
import time
from dataclasses import dataclass
from pathlib import Path

from issuer.errors import Conflict, InputError, Problem
from issuer.files import private_dir, write_private
from issuer.qr_images import png, qr_matrix, svg
from issuer.service import IssuerService, MintedCode

MAX_SUBJECTS = 100_000


@dataclass(frozen=True)
class PaperCode:
    subject: str
    minted: MintedCode
    file: str


def read_subjects(path: Path) -> list[str]:
    """Subject ids, one per line (or the first CSV column); blank lines and ``#`` comments skipped.

    Raises:
        ValueError: a line is not a subject id, or the file lists too many.
    """
    subjects: list[str] = []
    with path.open(encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#") or row[0].strip() == "subject":
                continue
            s = row[0].strip().lower()
            if len(s) != 16 or any(c not in "0123456789abcdef" for c in s):
                raise InputError(Problem.NOT_A_SUBJECT_ID, path=path, line=n, text=s[:40])
            subjects.append(s)
            if len(subjects) > MAX_SUBJECTS:
                raise InputError(Problem.TOO_MANY_SUBJECTS, path=path, limit=MAX_SUBJECTS)
    return list(dict.fromkeys(subjects))


def issue_paper_codes(
    service: IssuerService, subjects: list[str], out: Path, fmt: str, now: int, actor: str
) -> list[PaperCode]:
    """Issue a paper code per subject and write the images, ``sheet.html`` and ``manifest.csv``.

    Every subject is checked before the first code is issued, so an unknown id changes nothing.

    Raises:
        NotFound: an unknown subject. Conflict: a subject without a current green status.
    """
    records = [service.subject(s) for s in subjects]
    for rec in records:
        if rec.status != "green" or (rec.status_until is not None and rec.status_until <= now):
            raise Conflict(Problem.PAPER_CODE_NOT_GREEN, subject=rec.subject)
    private_dir(out)  # year-long credentials: for the operator who prints them only
    made = []
    for s in subjects:
        minted = service.issue_offline(s, now, actor)
        name = f"{s}.{fmt}"
        matrix = qr_matrix(minted.code)
        data = png(matrix, scale=10) if fmt == "png" else svg(matrix, scale=10).encode()
        _write(out / name, data)
        made.append(PaperCode(s, minted, name))
    _write(out / "sheet.html", _sheet(made).encode())
    lines = ["subject,status_index,expires_at,file"] + [
        f"{p.subject},{p.minted.status_index},{p.minted.expires_at},{p.file}" for p in made
    ]
    _write(out / "manifest.csv", ("\n".join(lines) + "\n").encode())
    return made


def _write(path: Path, data: bytes) -> None:
    write_private(path, data)


def _sheet(codes: list[PaperCode]) -> str:
    cells = []
    for p in codes:
        until = time.strftime("%Y-%m-%d", time.gmtime(p.minted.expires_at))
        cells.append(
            f"<figure>{svg(qr_matrix(p.minted.code))}<figcaption><b>{html.escape(p.minted.masked_name)}</b><br>"
            f"随申码纸质码 · Paper code #{p.minted.status_index}<br>有效至 Valid until {until}</figcaption></figure>"
        )
    return (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8"><title>随申码纸质码 Paper codes</title>'
        "<style>@page{size:A4;margin:12mm}body{font-family:'Noto Sans CJK SC',sans-serif;margin:0}"
        "main{display:grid;grid-template-columns:repeat(3,1fr);gap:6mm}"
        "figure{margin:0;break-inside:avoid;text-align:center;border:1px dashed #999;padding:3mm}"
        "figure svg{width:55mm;height:55mm}figcaption{font-size:11pt}</style></head><body><main>"
        + "".join(cells)
        + "</main></body></html>"
    )
