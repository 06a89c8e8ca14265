"""``POST /v1/events``: impressions, clicks, add-to-carts and orders, appended to the durable log."""

from __future__ import annotations

from fastapi import APIRouter

from serve_app.deps import FrontendDep
from serve_app.schemas import ErrorBody, EventsIn, EventsOut
from visearch.events import Event

router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post("/events", response_model=EventsOut, status_code=202,
             responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}},
             summary="Record what the shopper did with the results (idempotent by event_id; a batch is stored whole "
                     "or, when any event names an unknown request, another variant or a product not shown, not at all)")
async def events(body: EventsIn, frontend: FrontendDep) -> EventsOut:
    batch = [Event(e.type, e.request_id, e.product_id, e.position, variant=e.variant, value=e.value, ts=e.ts,
                   event_id=e.event_id or "") for e in body.events]
    new = await frontend.record(batch)
    return EventsOut(accepted=len(batch), new=new)
