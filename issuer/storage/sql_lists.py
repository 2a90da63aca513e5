"""Published lists: the signed trust list and status lists, with the changes each does not show yet."""

from __future__ import annotations

from issuer.errors import Conflict, Problem
from issuer.storage.records import ListVersion, PublishedList
from issuer.storage.sql_base import SqlBase


class ListsSql(SqlBase):
    """Published lists: one row per list, its newest signed body and a count of pending changes."""

    # --- published lists ----------------------------------------------------------------------------------
    def list_get(self, name: str) -> PublishedList | None:
        with self._read() as c:
            row = c.execute(
                "SELECT name, version, body, etag, issued_at, expires_at, dirty, size FROM lists WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        return PublishedList(
            row[0], int(row[1]), bytes(row[2]), row[3], int(row[4]), int(row[5]), int(row[6]), int(row[7])
        )

    def list_state(self, name: str) -> tuple[int, int] | None:
        with self._read() as c:
            row = c.execute("SELECT version, dirty FROM lists WHERE name = ?", (name,)).fetchone()
        return (int(row[0]), int(row[1])) if row else None

    def list_put(
        self, lst: PublishedList, actor: str, changes_seen: int = 0, version: ListVersion | None = None
    ) -> None:
        """Store a newly signed list; ``changes_seen`` pending changes (from its snapshot) are now published.
        A status list's ``version`` record (digest and delta) is stored in the same transaction.

        Raises: Conflict when the held version is not lower (another worker published first).
        """
        with self._write() as c:
            held = c.execute("SELECT version FROM lists WHERE name = ?", (lst.name,)).fetchone()
            if held and held[0] >= lst.version:
                raise Conflict(Problem.LIST_VERSION_NOT_ABOVE, name=lst.name, version=lst.version, held=held[0])
            c.execute(
                "INSERT INTO lists (name, version, body, etag, issued_at, expires_at, dirty, size)"
                " VALUES (?,?,?,?,?,?,0,?) ON CONFLICT (name) DO UPDATE SET version = excluded.version,"
                " body = excluded.body, etag = excluded.etag, issued_at = excluded.issued_at,"
                " expires_at = excluded.expires_at, size = excluded.size, dirty = GREATEST(0, lists.dirty - ?)",
                (lst.name, lst.version, lst.body, lst.etag, lst.issued_at, lst.expires_at, lst.size, changes_seen),
            )
            if version is not None:
                c.execute(
                    "INSERT INTO list_versions (name, version, digest, size, issued_at, delta) VALUES (?,?,?,?,?,?)",
                    (version.name, version.version, version.digest, version.size, version.issued_at, version.delta),
                )
            self._audit(
                c, lst.issued_at, actor, "list.publish", lst.name, {"version": lst.version, "exp": lst.expires_at}
            )

    def list_versions(self, name: str, first: int, last: int) -> list[ListVersion]:
        with self._read() as c:
            rows = c.execute(
                "SELECT name, version, digest, size, issued_at, delta FROM list_versions"
                " WHERE name = ? AND version BETWEEN ? AND ? ORDER BY version",
                (name, first, last),
            ).fetchall()
        return [
            ListVersion(r[0], int(r[1]), bytes(r[2]), int(r[3]), int(r[4]), None if r[5] is None else bytes(r[5]))
            for r in rows
        ]

    def list_versions_prune(self, name: str, before: int) -> int:
        with self._write(serial=False) as c:
            return c.execute(
                "DELETE FROM list_versions WHERE name = ? AND issued_at < ?"
                " AND version < (SELECT MAX(version) FROM list_versions WHERE name = ?)",
                (name, before, name),
            ).rowcount
