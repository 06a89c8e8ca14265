"""Shopper feedback (impression, click, add_to_cart, order) in a durable append-only log.

The default log is SQLite in WAL mode under the data dir: every accepted batch is one
transaction, committed before the API answers, so an acknowledged event survives a crash.
Events are idempotent by ``event_id`` (a retried POST adds nothing). The ranking and A/B
work reads the log back (:meth:`EventLog.read`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["Event", "EventLog", "EVENT_TYPES", "ServedRequest", "check_events"]

EventType = Literal["impression", "click", "add_to_cart", "order"]
EVENT_TYPES: tuple[str, ...] = ("impression", "click", "add_to_cart", "order")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    request_id TEXT NOT NULL,
    product_id TEXT,
    position INTEGER,
    variant TEXT,
    experiment TEXT,
    user_id TEXT,
    value REAL,
    ts REAL NOT NULL,
    received REAL NOT NULL,
    extra TEXT
);
CREATE INDEX IF NOT EXISTS events_request ON events(request_id);
CREATE INDEX IF NOT EXISTS events_experiment ON events(experiment, seq);
CREATE TABLE IF NOT EXISTS requests (
    request_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    experiment TEXT NOT NULL,
    variant TEXT NOT NULL,
    products TEXT NOT NULL,
    ts REAL NOT NULL
);
"""


@dataclass(frozen=True)
class Event:
    type: EventType
    request_id: str
    product_id: str | None = None
    position: int | None = None
    variant: str | None = None
    experiment: str | None = None
    user_id: str | None = None
    value: float | None = None  # an order's revenue
    ts: float | None = None
    event_id: str = ""

    def with_defaults(self) -> Event:
        from dataclasses import replace

        return replace(self, event_id=self.event_id or uuid.uuid4().hex, ts=self.ts if self.ts is not None else time.time())


@dataclass(frozen=True)
class ServedRequest:
    """A search the service answered: who asked, in which arm, what they were shown."""

    request_id: str
    user_id: str
    experiment: str
    variant: str
    products: tuple[str, ...]
    inputs: dict[str, list[float]] = field(default_factory=dict)  # product -> what the ranker saw (features, score)


def check_events(events: Sequence[Event], served: dict[str, ServedRequest]) -> list[str]:
    """Why each bad event of a batch is refused (empty: all good): an unknown request, a variant other than
    the one that served it, a product that was not among its results."""
    problems = []
    for i, e in enumerate(events):
        req = served.get(e.request_id)
        if req is None:
            problems.append(f"events[{i}]: unknown request_id {e.request_id!r} (not answered here, or too old)")
            continue
        if e.variant is not None and e.variant != req.variant:
            problems.append(f"events[{i}]: request {e.request_id} was served by variant {req.variant!r}, not {e.variant!r}")
        if e.product_id is not None and e.product_id not in req.products:
            problems.append(f"events[{i}]: product {e.product_id!r} was not among request {e.request_id}'s results")
    return problems


_SERVED = "request_id, user_id, experiment, variant, products, inputs"  # the columns _served reads, in order


def _served(row: Sequence[Any]) -> ServedRequest:
    rid, user, exp, variant, products, inputs = row[:6]
    return ServedRequest(rid, user, exp, variant, tuple(json.loads(products)), json.loads(inputs) if inputs else {})


class EventLog:
    """Append-only events in SQLite (WAL); safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(requests)")}
        if "inputs" not in columns:  # a log made before ranking kept no ranker inputs
            self._db.execute("ALTER TABLE requests ADD COLUMN inputs TEXT")
        self._lock = threading.Lock()

    def append(self, events: Sequence[Event]) -> int:
        """Write ``events`` in one transaction; returns how many were new (duplicates by id are skipped)."""
        now = time.time()
        rows = []
        for e in (ev.with_defaults() for ev in events):
            d = asdict(e)
            rows.append((d["event_id"], d["type"], d["request_id"], d["product_id"], d["position"], d["variant"],
                         d["experiment"], d["user_id"], d["value"], d["ts"], now, None))
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO events (event_id, type, request_id, product_id, position, variant, experiment,"
                    " user_id, value, ts, received, extra) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def remember(self, request: ServedRequest) -> None:
        """Record an answered request, so its events can be checked and attributed after a restart too."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO requests (request_id, user_id, experiment, variant, products, ts,"
                             " inputs) VALUES (?,?,?,?,?,?,?)",
                             (request.request_id, request.user_id, request.experiment, request.variant,
                              json.dumps(request.products), time.time(), json.dumps(request.inputs) if request.inputs else None))

    def served(self, request_ids: Sequence[str]) -> dict[str, ServedRequest]:
        """The answered requests among ``request_ids``."""
        ids = list(dict.fromkeys(request_ids))
        out: dict[str, ServedRequest] = {}
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                rows = self._db.execute(f"SELECT {_SERVED} FROM requests"
                                        f" WHERE request_id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
                for row in rows:
                    out[row[0]] = _served(row)
        return out

    def ranked(self, page: int = 5_000) -> Iterator[tuple[ServedRequest, float]]:
        """Every answered request whose order a ranker made (its inputs were kept), in the order answered, with
        its time."""
        after = 0
        while True:
            with self._lock:
                rows = self._db.execute(f"SELECT {_SERVED}, ts, rowid FROM requests WHERE inputs IS NOT NULL AND rowid > ?"
                                        " ORDER BY rowid LIMIT ?", (after, page)).fetchall()
            if not rows:
                return
            for row in rows:
                yield _served(row), float(row[-2])
            after = int(rows[-1][-1])

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def read(self, after: int = 0, limit: int = 10_000) -> Iterator[dict[str, Any]]:
        """Events in the order they were accepted, from sequence number ``after`` on."""
        with self._lock:
            cur = self._db.execute("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
            names = [c[0] for c in cur.description]
            rows = cur.fetchall()
        for row in rows:
            d = dict(zip(names, row, strict=True))
            d.pop("extra")
            yield d

    def of_experiment(self, name: str, page: int = 50_000) -> Iterator[dict[str, Any]]:
        """Every event of experiment ``name``, in the order accepted, read a page at a time."""
        after = 0
        while True:
            with self._lock:
                cur = self._db.execute("SELECT seq, type, user_id, variant, product_id, value, ts FROM events"
                                       " WHERE experiment = ? AND seq > ? ORDER BY seq LIMIT ?", (name, after, page))
                names = [c[0] for c in cur.description]
                rows = cur.fetchall()
            if not rows:
                return
            for row in rows:
                yield dict(zip(names, row, strict=True))
            after = rows[-1][0]

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"EventLog({json.dumps(str(self.path))})"
