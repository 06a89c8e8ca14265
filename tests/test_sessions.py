"""Sessions forget the upload after their time to live; events are durable and idempotent."""

from __future__ import annotations

import pytest

from visearch.errors import NotFoundError
from visearch.events import Event, EventLog
from visearch.sessions import SessionStore


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_session_expires_after_its_ttl_since_last_use():
    clock = Clock()
    store: SessionStore[str] = SessionStore(ttl_s=60, max_sessions=10, clock=clock)
    sid = store.put("photo")
    clock.t = 50
    assert store.get(sid) == "photo"  # use restarts the clock
    clock.t = 100
    assert store.get(sid) == "photo"
    clock.t = 161
    with pytest.raises(NotFoundError, match="expired"):
        store.get(sid)
    assert len(store) == 0, "an expired upload is dropped, not kept"


def test_session_cap_drops_the_oldest():
    store: SessionStore[int] = SessionStore(ttl_s=600, max_sessions=3)
    ids = [store.put(i) for i in range(5)]
    assert len(store) == 3
    with pytest.raises(NotFoundError):
        store.get(ids[0])
    assert store.get(ids[4]) == 4


def test_session_ids_are_unguessable():
    store: SessionStore[int] = SessionStore(ttl_s=600, max_sessions=100)
    ids = {store.put(i) for i in range(100)}
    assert len(ids) == 100 and all(len(i) > 20 for i in ids)


def test_events_are_idempotent_and_survive_reopening(tmp_path):
    log = EventLog(tmp_path / "events.db")
    assert log.append([Event("click", "r1", "p1", 0, event_id="e1"), Event("order", "r1", "p1", value=999.0)]) == 2
    assert log.append([Event("click", "r1", "p1", 0, event_id="e1")]) == 0
    log.close()
    again = EventLog(tmp_path / "events.db")
    rows = list(again.read())
    assert [r["type"] for r in rows] == ["click", "order"] and rows[1]["value"] == 999.0
    assert again.count() == 2
