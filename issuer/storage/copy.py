"""``suishenma-issuer db copy --to URL``: move an issuer's data to an empty PostgreSQL database, intact.

Rows are copied as they are: sealed names stay sealed under the same data key (their associated data
names the column and the subject, which do not change), and the audit log keeps its ids and hashes, so
its chain and its signed checkpoints still hold. The copy is one transaction on the target: it lands
whole or not at all. Afterwards every table's row count is compared and the copied audit chain is
walked and held against the source's head.
"""

from __future__ import annotations

from dataclasses import dataclass

from issuer.audit_chain import verify_chain
from issuer.errors import Conflict, Problem
from issuer.storage.postgres import PostgresStorage
from issuer.storage.sql import SqlStorage
from suishenma.texts import Text


@dataclass(frozen=True)
class CopyReport:
    rows: dict[str, int]
    audit_rows: int
    audit_head: str


def copy_to(source: SqlStorage, target: PostgresStorage) -> CopyReport:
    """Copy every row of ``source`` into the empty ``target`` and check the result.

    Raises:
        Conflict: the target already holds an issuer (subjects, keys or audit rows), or the copy does
            not match the source (then nothing is kept: the transaction is rolled back).
        StorageUnavailable: either database went away (nothing kept).
    """
    held = [
        table
        for table, has_rows in (
            ("subjects", bool(target.subjects_sealed("", 1))),
            ("signing_keys", bool(target.signing_keys())),
            ("audit", target.audit_head()[0] > 0),
        )
        if has_rows
    ]
    if held:
        raise Conflict(Problem.COPY_TARGET_NOT_EMPTY, tables=", ".join(held))
    counts = target.copy_from(source)
    report = verify_chain(target.audit_rows(), target.audit_high_water())
    if not report.ok or target.audit_head() != source.audit_head():
        raise Conflict(
            Problem.COPY_CHAIN_BROKEN,
            problems=Text("；".join(report.problems) or "链头不同", "; ".join(report.problems) or "another head"),
        )
    return CopyReport(counts, report.rows, report.head)
