"""Photo to results through the running service over HTTP, against the in-process pipeline in the same run.

Figures (default models, the demo catalog, held-out shopper photos):
- one user at a time: p50 / p95 of ``POST /v1/photo`` (articles read included);
- ``--users`` concurrent Locust shoppers for ``--duration`` seconds: requests, failures, throughput, p50 / p95;
- baseline: the same photos through :class:`visearch.pipeline.SearchPipeline` in this process (no HTTP,
  no Ray), so Serve's overhead shows as the ratio.

The service is started here (``visearch serve --config deployments/local.yaml``) unless ``--url`` names one.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
ROOT = HERE.parent


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 1), "p95": round(float(np.percentile(a, 95)), 1),
            "mean": round(float(a.mean()), 1), "n": len(ms)}


def in_process(photos: list[Path]) -> dict[str, float]:
    from visearch.config import get_settings
    from visearch.pipeline import SearchPipeline

    pipeline = SearchPipeline.from_settings(get_settings())
    pipeline.search(photos[0].read_bytes(), k=10)  # warm-up
    times = []
    for p in photos:
        t = time.perf_counter()
        pipeline.search(p.read_bytes(), k=10)
        times.append((time.perf_counter() - t) * 1000)
    return percentiles(times)


def over_http(url: str, photos: list[Path]) -> dict[str, float]:
    import httpx

    times = []
    with httpx.Client(base_url=url, timeout=60, headers={"X-User-Id": "bench-single"}) as c:
        for p in [photos[0], *photos]:
            data = p.read_bytes()
            t = time.perf_counter()
            r = c.post("/v1/photo", files={"image": ("p.jpg", data, "image/jpeg")}, data={"top_k": "10"})
            times.append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
    return percentiles(times[1:])  # the first one warms up


def locust(url: str, photos_dir: Path, users: int, duration: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "run"
        env = {**os.environ, "VISEARCH_BENCH_PHOTOS": str(photos_dir)}
        subprocess.run([sys.executable, "-m", "locust", "-f", str(HERE / "locustfile.py"), "--headless", "-u", str(users),
                        "-r", str(users), "-t", f"{duration}s", "--host", url, "--csv", str(prefix), "--only-summary"],
                       check=True, env=env, cwd=ROOT, capture_output=True, text=True)
        with open(f"{prefix}_stats.csv", newline="") as f:
            row = next(r for r in csv.DictReader(f) if r["Name"] == "/v1/photo")
    return {"users": users, "seconds": duration, "requests": int(row["Request Count"]),
            "failures": int(row["Failure Count"]), "rps": round(float(row["Requests/s"]), 2),
            "p50": float(row["50%"]), "p95": float(row["95%"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "demo", help="WB-Synth set whose test photos are sent")
    ap.add_argument("--url", help="a running service; default: start one here")
    ap.add_argument("--photos", type=int, default=100, help="photos for the one-user runs")
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    photos_dir = args.data / "scenes" / "images" / "test"
    photos = sorted(photos_dir.glob("*.jpg"))[: args.photos]
    if not photos:
        sys.exit(f"bench_serve: no photos under {photos_dir}; run make demo first (it makes data/demo and the models)")
    server = None
    url = args.url
    if url is None:
        port = 8765
        url = f"http://127.0.0.1:{port}"
        env = {**os.environ, "VISEARCH_SERVING__CATALOG_DIR": str(args.data)}
        server = subprocess.Popen([sys.executable, "-m", "visearch", "serve", "--config", str(ROOT / "deployments" / "local.yaml"),
                                   "--port", str(port)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        from visearch.cli.serve import wait_ready

        wait_ready(url, 600)
    try:
        single = over_http(url, photos)
        load = locust(url, photos_dir, args.users, args.duration)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=120)
    baseline = in_process(photos)
    report = {"one_user_http_ms": single, "in_process_ms": baseline,
              "serve_overhead_ratio_p50": round(single["p50"] / baseline["p50"], 2), "load": load}
    print(f"one user over HTTP: p50 {single['p50']} ms, p95 {single['p95']} ms ({single['n']} photos)")
    print(f"in process (baseline, same photos): p50 {baseline['p50']} ms, p95 {baseline['p95']} ms; "
          f"ratio HTTP/in-process at p50: {report['serve_overhead_ratio_p50']}")
    print(f"{load['users']} users for {load['seconds']} s: {load['requests']} requests, {load['failures']} failed, "
          f"{load['rps']} req/s, p50 {load['p50']} ms, p95 {load['p95']} ms")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
