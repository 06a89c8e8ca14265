"""The ingress's own work, apart from HTTP: sessions, variant assignment, events, reloads.

Routes stay thin: parse, call one method here, shape the answer.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from PIL import Image

from serve_app.deployments._common import every
from serve_app.metrics import Metrics
from visearch.ab.guardrails import GuardrailWatch
from visearch.config import Settings
from visearch.errors import InvalidArgumentError, NotFoundError, VisearchError
from visearch.events import Event, EventLog, ServedRequest, check_events
from visearch.experiments import Experiment, ExperimentStore, Variant, assign, default_experiment
from visearch.index import SearchFilter
from visearch.query import Answer, PhotoSession, QueryFlow, Searched, Stages
from visearch.ranking.online import OnlineReranker
from visearch.sessions import new_id

__all__ = ["Frontend", "Served", "ServiceStages", "Sessions"]

log = logging.getLogger("visearch.ingress")


class ServiceStages(Stages, Protocol):
    """The query stages plus what the product pages and the readiness probe need."""

    async def products(self, product_ids: Sequence[str]) -> dict[str, dict]: ...

    async def similar(self, product_id: str, k: int, online_dim: int | None, filter: SearchFilter | None) -> Searched: ...

    async def ready(self, embedder: str) -> dict[str, object]: ...


class Sessions(Protocol):
    """Where uploads wait for their follow-ups: shared by every ingress replica (serve_app.stages.SharedSessions)."""

    async def put(self, value: tuple[PhotoSession, Served]) -> str: ...

    async def get(self, session_id: str) -> tuple[PhotoSession, Served]: ...


@dataclass(frozen=True)
class Served:
    """Who asked, in which arm: recorded per request so events can be attributed."""

    user_id: str
    experiment: str
    variant: str


class OnlineLearner:
    """The one process that feeds the event log to the online re-ranker (an exclusive lock beside its
    checkpoint picks it among ingress replicas); search stages read the checkpoint it writes."""

    def __init__(self, settings: Settings, events: EventLog, lock: Any) -> None:
        self.online, self.events, self._lock = OnlineReranker(settings.ranking), events, lock
        self.stop = every(settings.serving.reload_interval_s, self.step, "online-learner")

    @classmethod
    def start(cls, settings: Settings, events: EventLog) -> OnlineLearner | None:
        if settings.ranking.online_weight <= 0:
            return None
        assert settings.ranking.online_checkpoint is not None
        path = Path(f"{settings.ranking.online_checkpoint}.lock")
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(path, "w")  # noqa: SIM115 - held for the life of the process
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            return None  # another replica learns
        return cls(settings, events, lock)

    def step(self) -> int:
        n = self.online.learn_from_log(self.events)
        if n:
            log.info("online re-ranker learnt from %d events (cursor %d)", n, self.online.cursor)
        return n


class Frontend:
    """Everything the ingress does between an HTTP request and the query flow."""

    def __init__(self, stages: ServiceStages, sessions: Sessions, settings: Settings) -> None:
        self.settings, self.stages, self.sessions = settings, stages, sessions
        self.replica = ""  # the Serve replica's id, set by the ingress
        s = settings.serving
        self.flow = QueryFlow(stages, settings)
        assert s.experiments_dir is not None and s.events_path is not None
        self.experiments = ExperimentStore(s.experiments_dir)
        self.events = EventLog(s.events_path)
        self.metrics = Metrics()
        self._experiment = default_experiment(settings.models.embedder, settings.index.online_dim)
        self._stamp: tuple[str | None, int] = (None, 0)
        self._watch: tuple[tuple[str, int], GuardrailWatch] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self.learner = OnlineLearner.start(settings, self.events)
        self._checked = 0.0
        self.reload_experiment()

    # ------------------------------------------------------------------ experiments
    @property
    def experiment(self) -> Experiment:
        if time.monotonic() - self._checked > self.settings.serving.reload_interval_s:
            self.reload_experiment()
        return self._experiment

    def reload_experiment(self) -> bool:
        """Switch to the store's serving experiment if it changed; a broken one is logged and skipped."""
        self._checked = time.monotonic()
        try:
            stamp = self.experiments.stamp()
            if stamp == self._stamp:
                return False
            exp = self.experiments.serving() or default_experiment(self.settings.models.embedder,
                                                                   self.settings.index.online_dim)
        except Exception as e:  # noqa: BLE001 - keep routing by the last good experiment
            log.error("cannot load the serving experiment, keeping %s: %s", self._experiment.name, e)
            return False
        self._experiment, self._stamp = exp, stamp
        log.info("serving experiment %s v%s: %s", exp.name, exp.version,
                 ", ".join(f"{v.name}={v.weight}" for v in exp.variants))
        return True

    def variant_for(self, user_id: str) -> tuple[Experiment, Variant]:
        exp = self.experiment
        return exp, assign(exp, user_id)

    # ------------------------------------------------------------------ queries
    async def _remember(self, answer: Answer, served: Served) -> None:
        """Keep who asked, in which arm, and what they were shown: events are checked against it."""
        shown = [r.product_id for r in answer.results] + [h.product_id for h in answer.article_hits]
        for g in answer.groups or []:
            shown += [r.product_id for r in g.results]
        products = tuple(dict.fromkeys(shown))
        request = ServedRequest(answer.request_id, served.user_id, served.experiment, served.variant, products,
                                {p: answer.ranking[p] for p in products if p in answer.ranking})
        await asyncio.to_thread(self.events.remember, request)

    @asynccontextmanager
    async def _watched(self, exp: Experiment, variant: Variant) -> AsyncIterator[None]:
        """Time a search of ``variant`` against the experiment's guardrails; a breach stops the experiment."""
        t = time.perf_counter()
        failed = False
        try:
            yield
        except Exception as e:
            failed = not (isinstance(e, VisearchError) and e.http_status < 500)
            raise
        finally:
            if exp.guardrails is not None and exp.active:
                if self._watch is None or self._watch[0] != (exp.name, exp.version):
                    self._watch = ((exp.name, exp.version), GuardrailWatch(exp.guardrails))
                breach = self._watch[1].observe(variant.name, (time.perf_counter() - t) * 1000, failed)
                if breach:
                    self._trip(exp, breach)

    def _trip(self, exp: Experiment, reason: str) -> None:
        """Stop ``exp`` (a new inactive version) and route by it at once; other replicas follow on reload."""
        try:
            current = self.experiments.stop(exp.name, reason)
            self._experiment, self._stamp = current, self.experiments.stamp()
            log.warning("experiment %s stopped, everyone to %s: %s", exp.name, current.control.name, reason)
        except Exception as e:  # noqa: BLE001 - a failed stop must not fail the request that tripped it
            log.error("could not stop experiment %s after %s: %s", exp.name, reason, e)

    def _shadow(self, exp: Experiment, session: PhotoSession, answer: Answer) -> None:
        """Search the same object with each shadow variant in the background; the answer is not waited for."""
        if not exp.shadows or not exp.active or answer.picked is None:
            return
        for v in exp.shadows:
            task = asyncio.create_task(self._shadow_search(exp, v, session, answer))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _shadow_search(self, exp: Experiment, variant: Variant, session: PhotoSession, live: Answer) -> None:
        t = time.perf_counter()
        try:
            shadow = await self.flow.again(session, variant=variant, experiment=exp.name, object_id=live.picked, box=None,
                                           top_k=max(1, len(live.results)), all_objects=False, filter=None,
                                           request_id=new_id("r"))
        except Exception as e:  # noqa: BLE001 - a shadow never affects live traffic
            self.metrics.shadow_errors.labels(variant.name).inc()
            log.warning("shadow %s of %s failed: %s", variant.name, live.request_id, e)
            return
        ms = (time.perf_counter() - t) * 1000
        live_ids = [r.product_id for r in live.results]
        overlap = len(set(live_ids) & {r.product_id for r in shadow.results}) / max(1, len(live_ids))
        self.metrics.shadow_latency.labels(variant.name).observe(ms / 1000)
        self.metrics.shadow_overlap.labels(variant.name).observe(overlap)
        log.info("shadow %s of %s (live %s): %.0f ms, top-%d overlap %.2f", variant.name, live.request_id, live.variant,
                 ms, len(live_ids), overlap)

    async def photo(self, image: Image.Image, user_id: str, *, top_k: int | None, all_objects: bool,
                    filter: SearchFilter | None) -> Answer:
        exp, variant = self.variant_for(user_id)
        async with self._watched(exp, variant):
            answer, session = await self.flow.photo(image, variant=variant, experiment=exp.name, top_k=top_k,
                                                    all_objects=all_objects, filter=filter, request_id=new_id("r"))
        served = Served(user_id, exp.name, variant.name)
        answer.session_id = await self.sessions.put((session, served))
        await self._remember(answer, served)
        self.metrics.observe_stages(answer.timings_ms, variant.name)
        self._shadow(exp, session, answer)
        return answer

    async def _session_variant(self, session_id: str, user_id: str) -> tuple[PhotoSession, Experiment, Variant]:
        """A stored upload and the variant that keeps serving it (the user's arm, if the experiment changed)."""
        session, served = await self.sessions.get(session_id)
        exp = self.experiment
        try:
            variant = exp.variant(served.variant) if exp.name == served.experiment else assign(exp, user_id)
        except NotFoundError:
            variant = assign(exp, user_id)
        return session, exp, variant

    async def search(self, user_id: str, *, session_id: str | None, object_id: int | None, box: list[float] | None,
                     article: str | None, top_k: int | None, all_objects: bool, filter: SearchFilter | None) -> Answer:
        given = sum(x is not None for x in (object_id, box, article)) + bool(all_objects)
        if given != 1:
            raise InvalidArgumentError("give exactly one of object_id, box, article or all_objects=true")
        if article is not None:
            exp, variant = self.variant_for(user_id)
            async with self._watched(exp, variant):
                answer = await self.flow.article(article, variant=variant, experiment=exp.name, top_k=top_k,
                                                 filter=filter, request_id=new_id("r"))
            answer.session_id = session_id
            served = Served(user_id, exp.name, variant.name)
        else:
            if not session_id:
                raise InvalidArgumentError("session_id is needed to search an object or a box of an uploaded photo")
            session, exp, variant = await self._session_variant(session_id, user_id)
            async with self._watched(exp, variant):
                answer = await self.flow.again(session, variant=variant, experiment=exp.name, object_id=object_id,
                                               box=box, top_k=top_k, all_objects=all_objects, filter=filter,
                                               request_id=new_id("r"))
            answer.session_id = session_id
            served = Served(user_id, exp.name, variant.name)
        await self._remember(answer, served)
        self.metrics.observe_stages(answer.timings_ms, answer.variant)
        return answer

    async def refine(self, user_id: str, *, session_id: str, object_id: int | None, text: str, top_k: int | None,
                     filter: SearchFilter | None) -> Answer:
        """The session's object as the text says it should be, served by the variant the upload was."""
        session, exp, variant = await self._session_variant(session_id, user_id)
        async with self._watched(exp, variant):
            answer = await self.flow.refine(session, variant=variant, text=text, experiment=exp.name, object_id=object_id,
                                            top_k=top_k, filter=filter, request_id=new_id("r"))
        answer.session_id = session_id
        await self._remember(answer, Served(user_id, exp.name, variant.name))
        self.metrics.observe_stages(answer.timings_ms, answer.variant)
        return answer

    # ------------------------------------------------------------------ feedback
    async def record(self, events: list[Event]) -> int:
        """Append a batch of events, all or none: each must name a request answered here, the variant that
        served it (if it names one) and a product among its results. Attributed to that request's user,
        experiment and variant."""
        served = await asyncio.to_thread(self.events.served, [e.request_id for e in events])
        problems = check_events(events, served)
        if problems:
            raise InvalidArgumentError(f"{len(problems)} of {len(events)} events refused, none stored: " + "; ".join(problems[:20]))
        enriched = [Event(e.type, e.request_id, e.product_id, e.position, served[e.request_id].variant,
                          served[e.request_id].experiment, served[e.request_id].user_id, e.value, e.ts, e.event_id)
                    for e in events]
        new = await asyncio.to_thread(self.events.append, enriched)
        for e in enriched:
            self.metrics.events.labels(e.type).inc()
        return new
