"""The event log: checks against answered requests, and acknowledged events survive kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter

from visearch.events import Event, EventLog, ServedRequest, check_events


def test_events_are_checked_against_the_request_that_showed_the_products(tmp_path):
    log = EventLog(tmp_path / "e.db")
    log.remember(ServedRequest("r1", "u1", "exp", "treatment", ("p1", "p2")))
    served = log.served(["r1", "r2", "r1"])
    assert list(served) == ["r1"] and served["r1"].products == ("p1", "p2")
    good = [Event("impression", "r1", "p1"), Event("click", "r1", "p2", variant="treatment"), Event("order", "r1", value=5.0)]
    assert check_events(good, served) == []
    bad = [Event("click", "r2", "p1"), Event("click", "r1", "p3"), Event("click", "r1", "p1", variant="control")]
    problems = check_events(bad, served)
    assert len(problems) == 3
    assert "unknown request_id 'r2'" in problems[0] and "'p3' was not among" in problems[1] and "not 'control'" in problems[2]
    log.close()
    again = EventLog(tmp_path / "e.db")
    assert again.served(["r1"])["r1"].variant == "treatment", "requests survive a restart"


WRITER = textwrap.dedent("""
    import sys
    from visearch.events import Event, EventLog
    log = EventLog(sys.argv[1])
    n = 0
    while True:
        batch = [Event("click", f"r{n}", "p1", event_id=f"e{n}-{i}") for i in range(50)]
        log.append(batch)
        print(n, flush=True)  # acknowledged: appended and committed
        n += 1
""")


def test_acknowledged_events_survive_kill_9_and_none_is_doubled(tmp_path):
    path = tmp_path / "events.db"
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    proc = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    acked = []
    deadline = time.monotonic() + 120
    while len(acked) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line:
            acked.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer is somewhere inside its next batch
    proc.wait(timeout=30)
    assert len(acked) >= 40, "the writer did not get going"
    log = EventLog(path)
    rows = list(log.read(limit=10**7))
    ids = [r["event_id"] for r in rows]
    assert len(ids) == len(set(ids)), "no event is stored twice"
    stored = {r["request_id"] for r in rows}
    assert all(f"r{n}" in stored for n in acked), "every acknowledged batch is there"
    assert set(Counter(r["request_id"] for r in rows).values()) == {50}, "batches are whole or absent, never half"
    # the retried batch after a crash adds nothing it already had
    assert log.append([Event("click", f"r{acked[-1]}", "p1", event_id=f"e{acked[-1]}-{i}") for i in range(50)]) == 0
