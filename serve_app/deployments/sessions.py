"""Sessions deployment: the search sessions every ingress replica shares.

An upload made through one ingress replica is followed up (another object, a drawn box, a refinement) through
whichever replica Serve routes the next request to, so the sessions cannot live in a replica. They live here,
in memory only, as in :class:`~visearch.sessions.SessionStore` (sliding time-to-live, size cap; nothing written
to disk). One replica holds them all: a session is a small map entry and a decoded photo, and Serve does not
route by key, so a second replica would hold half the sessions. Should it die, Serve starts it again and the
sessions it held are gone: their follow-ups get the usual 404 ("upload the photo again").
"""

from __future__ import annotations

from typing import Any

from ray import serve

from serve_app.deployments._common import settings_from
from visearch.sessions import SessionStore


@serve.deployment(name="Sessions", num_replicas=1)
class SessionsDeployment:
    def __init__(self, settings: dict[str, Any]) -> None:
        s = settings_from(settings).serving
        self.store: SessionStore[Any] = SessionStore(s.session_ttl_s, s.max_sessions)

    def put(self, value: Any) -> str:
        return self.store.put(value)

    def get(self, session_id: str) -> Any:
        return self.store.get(session_id)
