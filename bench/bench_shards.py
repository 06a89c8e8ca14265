#!/usr/bin/env python
"""Scatter-gather against one index: the scale model of a sharded Qdrant collection.

    python bench/bench_shards.py [--size 200000] [--shards 8] [--queries 1000] [--out FILE] [--check]

The same clustered vectors (visearch.index.synthetic) go into one embedded index and into ``--shards``
embedded indexes split by product id (visearch.index.shards); in the same run:

- build time of each (the shards one after the other);
- recall@10 of HNSW and two-stage search against the exact top-10 (512-d for two-stage, the 128-d
  slice for HNSW, as ``measure_index`` counts), one index against the merged shards;
- one query at a time: the one index's queries per second, the shards' (every shard searched, one
  thread per shard, merged), and the merge's own cost per query (timed on the shards' answers).

Target (``--check`` makes a miss fail the run): merged recall@10 within 0.005 of one index's.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from _report import Tee

from visearch.config import Settings
from visearch.index import open_index
from visearch.index.evaluate import PASSES
from visearch.index.metrics import exact_topk, recall_at_k
from visearch.index.shards import ScatterGather, merge_hits
from visearch.index.synthetic import clustered_embeddings


def one_at_a_time(search: Any, queries: np.ndarray, mode: str) -> tuple[list[list[str]], float]:
    """Ids found and the best of ``PASSES`` passes' queries per second, one query per call."""
    best, found = float("inf"), []
    for _ in range(PASSES):
        start = time.perf_counter()
        found = [[h.product_id for h in search(q[None, :], 10, mode=mode)[0]] for q in queries]
        best = min(best, time.perf_counter() - start)
    return found, len(queries) / best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200_000)
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()

    emb = clustered_embeddings(args.size, queries=args.queries, seed=0)
    ids = np.array(emb.product_ids())
    work = Path(tempfile.mkdtemp(prefix="bench-shards-"))
    say = Tee(args.out)
    try:
        one = open_index(Settings(data_dir=work / "one"))
        start = time.perf_counter()
        one.build(emb.batches(8192), total=emb.n)
        one_build = time.perf_counter() - start
        shards = ScatterGather([open_index(Settings(data_dir=work / f"shard{i}")) for i in range(args.shards)])
        start = time.perf_counter()
        sizes = shards.build(emb.batches(8192))
        shards_build = time.perf_counter() - start
        say(f"{emb.n:,} products, {args.queries} queries; {args.shards} shards of {min(sizes):,}..{max(sizes):,}")
        say(f"build: one index {one_build:.1f} s, {args.shards} shards {shards_build:.1f} s "
            f"({shards_build / one_build:.2f}x)")

        online_dim = one.settings.online_dim
        online = emb.vectors[:, :online_dim] / np.linalg.norm(emb.vectors[:, :online_dim], axis=1, keepdims=True)
        q_online = emb.queries[:, :online_dim] / np.linalg.norm(emb.queries[:, :online_dim], axis=1, keepdims=True)
        truth = {"hnsw": exact_topk(online, q_online, 10)[0], "two_stage": exact_topk(emb.vectors, emb.queries, 10)[0]}
        worst = 0.0
        for mode in ("hnsw", "two_stage"):
            want = ids[truth[mode]].tolist()
            found_one, qps_one = one_at_a_time(one.search_batch, emb.queries, mode)
            found_sh, qps_sh = one_at_a_time(shards.search_batch, emb.queries, mode)
            r_one, r_sh = recall_at_k(found_one, want), recall_at_k(found_sh, want)
            worst = max(worst, r_one - r_sh)
            answers = [shards.scatter(q[None, :], 10, mode=mode) for q in emb.queries]
            start = time.perf_counter()
            for a in answers:
                merge_hits(a, 10)
            merge_us = (time.perf_counter() - start) / len(answers) * 1e6
            say(f"{mode}: recall@10 one {r_one:.4f}, {args.shards} shards {r_sh:.4f} (diff {r_sh - r_one:+.4f}); "
                f"qps one {qps_one:,.0f}, shards {qps_sh:,.0f} ({qps_sh / qps_one:.2f}x); merge {merge_us:.1f} µs/query "
                f"({merge_us / (1e6 / qps_sh) * 100:.1f}% of a scatter-gather query)")
        ok = worst <= 0.005
        say(f"target: merged recall@10 within 0.005 of one index's: {'met' if ok else 'MISSED'} (worst {worst:+.4f})")
        one.close()
        shards.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
