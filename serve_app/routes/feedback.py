"""``POST /v1/events``: impressions, clicks, add-to-carts and orders, appended to the durable log."""

from __future__ import annotations

from fastapi import APIRouter

from serve_app.deps import FrontendDep, UserDep
from serve_app.schemas import ErrorBody, EventsIn, EventsOut
from visearch.events import Event

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/events", response_model=EventsOut, status_code=202, responses={422: {"model": ErrorBody}},
             summary="Record what the shopper did with the results (idempotent by event_id)")
async def events(body: EventsIn, frontend: FrontendDep, user: UserDep) -> EventsOut:
    batch = [Event(e.type, e.request_id, e.product_id, e.position, value=e.value, ts=e.ts, event_id=e.event_id or "")
             for e in body.events]
    new = await frontend.record(batch, user)
    return EventsOut(accepted=len(batch), new=new)
