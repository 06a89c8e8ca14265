"""Event log write speed: shopper events appended durably (SQLite, WAL, synchronous=FULL).

Figure: events a second appended in batches of 100, as ``POST /v1/events`` delivers them
(target: 10,000 a second on this machine), and checked against their requests first.
Baseline, same run: one event per transaction, as a naive per-event log would write them.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from visearch.events import Event, EventLog, ServedRequest, check_events

TARGET = 10_000


def rate(log: EventLog, n: int, batch: int, start: int, checked: bool = False) -> float:
    events = [Event("click", f"r{(start + i) // 10}", f"p{i % 10}", i % 10, event_id=f"e{start + i}") for i in range(n)]
    t = time.perf_counter()
    for k in range(0, n, batch):
        chunk = events[k : k + batch]
        if checked:
            assert not check_events(chunk, log.served([e.request_id for e in chunk]))
        log.append(chunk)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        log = EventLog(Path(tmp) / "events.db")
        for r in range((2 * args.events + 2_000) // 10 + 1):
            log.remember(ServedRequest(f"r{r}", "u", "exp", "control", tuple(f"p{i}" for i in range(10))))
        batched = rate(log, args.events, args.batch, 0)
        checked = rate(log, args.events, args.batch, args.events, checked=True)
        single = rate(log, min(args.events, 2_000), 1, 2 * args.events)
        assert log.count() == 2 * args.events + min(args.events, 2_000)
    result = {"events": args.events, "batch": args.batch, "events_per_s": round(batched),
              "checked_events_per_s": round(checked), "baseline_one_per_transaction_per_s": round(single),
              "target_per_s": TARGET}
    print(f"event log, batches of {args.batch}: {batched:,.0f} events/s ({'meets' if batched >= TARGET else 'BELOW'} the "
          f"{TARGET:,}/s target); checked against their requests first: {checked:,.0f}/s")
    print(f"baseline, one event per transaction: {single:,.0f} events/s; ratio {batched / single:.1f}x")
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / "events.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
