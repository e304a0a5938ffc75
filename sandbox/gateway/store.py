"""The outbox: one row per accepted idempotency key, in SQLite (a file, or in memory for one process)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

MEMORY = ":memory:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL,
    loan_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint     TEXT NOT NULL,
    body            TEXT NOT NULL,
    response        TEXT NOT NULL,
    accepted_at     TEXT NOT NULL,
    presented       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS deliveries_loan ON deliveries (loan_id, seq);
CREATE INDEX IF NOT EXISTS deliveries_channel ON deliveries (channel, seq);
"""


class Store:
    """The outbox: one row per accepted idempotency key. SQLite, one connection, one lock."""

    def __init__(self, path: str | None):
        self.path = path or MEMORY
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != MEMORY:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def record(
        self, channel: str, loan_id: str, key: str, fingerprint: str, body: dict, make_response: Callable[[], dict]
    ) -> tuple[str, dict | None]:
        """("accepted", response) | ("duplicate", stored response) | ("conflict", None)."""
        with self._lock:
            row = self._db.execute("SELECT fingerprint, response FROM deliveries WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                if row["fingerprint"] != fingerprint:
                    return "conflict", None
                self._db.execute("UPDATE deliveries SET presented = presented + 1 WHERE idempotency_key = ?", (key,))
                return "duplicate", json.loads(row["response"])
            response = make_response()
            self._db.execute(
                "INSERT INTO deliveries (id, channel, loan_id, idempotency_key, fingerprint, body, response,"
                " accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    response["id"],
                    channel,
                    loan_id,
                    key,
                    fingerprint,
                    json.dumps(body, ensure_ascii=False),
                    json.dumps(response, ensure_ascii=False),
                    response["accepted_at"],
                ),
            )
            return "accepted", response

    def items(
        self,
        *,
        loan_id: str | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        before: int | None = None,
        after: int | None = None,
    ) -> list[dict]:
        """Deliveries in acceptance order; `before` (a seq) pages back from there, newest first; `after` (a seq) only
        the newer ones (a reader that follows the outbox)."""
        where, args = [], []
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        if after is not None:
            where.append("seq > ?")
            args.append(after)
        for column, value in (("loan_id", loan_id), ("channel", channel), ("idempotency_key", idempotency_key)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [
            {
                "id": r["id"],
                "seq": r["seq"],
                "channel": r["channel"],
                "loan_id": r["loan_id"],
                "idempotency_key": r["idempotency_key"],
                "accepted_at": r["accepted_at"],
                "body": json.loads(r["body"]),
                "response": json.loads(r["response"]),
                "presented": r["presented"],
            }
            for r in rows
        ]

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM deliveries")

    def close(self) -> None:
        with self._lock:
            self._db.close()
