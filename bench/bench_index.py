#!/usr/bin/env python
"""Benchmark of the vector index: the project's layer against the engine under it, hnswlib and faiss.

    python bench/bench_index.py [--sizes 200000,1000000] [--queries 1000] [--passes 3] [--out FILE] [--check]

For each size, in one run on the same clustered vectors (:mod:`visearch.index.synthetic`):

* builds, both cores: the project's index (``VectorIndex.build``: checks, product-id table,
  payloads, graph), the raw ``qdrant-edge-py`` engine with the same configuration (the same
  ``EdgeConfig``, vectors, payloads and payload indexes, integer point ids, no checks),
  hnswlib and faiss (fp32 HNSW, the same m / ef_construct);
* queries on one thread, best of three passes (``--passes``) taken in turn, each right after an untimed pass of
  its own (work sharing the machine disturbs every side alike; the side before it does not): the
  project's index one query at a time (HNSW stage only, ids only and with payload), 64 queries a
  call (``search_batch``), two-stage; the raw engine at the same
  ``ef`` on the very files the index serves (the same graph: a multi-threaded build is not
  repeatable, and two builds' graphs differ by more than the layer costs): through its ``query``
  entry with requests made before the clock starts, made per query as a caller must, and per query
  reading each hit's product id (from a table, as the index does) and score, which is what a search
  hands back; through its ``search`` entry (no query planner; what the index uses for one query
  without a prefetch) with requests made beforehand and per query; on its own build; hnswlib and
  faiss one query at a time with ``ef`` raised until they reach the recall the index has at its default ``ef`` (their queries/s at exactly that recall read off
  the line between the last two ``ef``, which the ratios use);
* an update of 10,000 changes and a rollback, timed; bytes per product.

HNSW recall@10 is against exact search on the online (128-d) slice, two-stage's against exact
512-d search. Targets (``--check`` fails the run on a miss): one query at a time >= 0.9x the raw
engine at the same settings; 64 a call >= 1.0x hnswlib one at a time at equal recall; the build
<= 1.2x the raw engine's; at 1M, HNSW recall@10 >= 0.97 at >= 1,000 queries/s and two-stage
recall@10 >= 0.97. Output to stdout and, with --out, a file (bench/results/ is git-ignored).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _report import Tee

from visearch.config import Settings
from visearch.index import ChangeSet, open_index
from visearch.index.edge import EdgeIndex, search_params
from visearch.index.evaluate import PASSES
from visearch.index.metrics import exact_topk, recall_at_k
from visearch.index.synthetic import SyntheticEmbeddings, clustered_embeddings
from visearch.index.validation import GRAPH_FIELDS, INDEXED_FIELDS

EF_SWEEP = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BATCH = 64


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall(found: list[list[Any]], truth: np.ndarray) -> float:
    return round(recall_at_k(found, truth.tolist(), 10), 4)


def best_of(runs: dict[str, Callable[[], Any]], n: int, passes: int = PASSES) -> tuple[dict[str, float], dict[str, Any]]:
    """Queries per second of each run, best of ``passes`` passes taken in turn; each run's last result.

    Each timed pass follows an untimed one of the same run: the run before it filled the CPU caches
    with its own graph and vectors (two shards of the same files hold separate copies in RAM), and a
    server answering from one index all day does not pay that.
    """
    seconds = {name: float("inf") for name in runs}
    results: dict[str, Any] = {}
    for _ in range(passes):
        for name, run in runs.items():
            run()
            start = time.perf_counter()
            results[name] = run()
            seconds[name] = min(seconds[name], time.perf_counter() - start)
    return {name: round(n / s, 1) for name, s in seconds.items()}, results


def sweep(one: Callable[[np.ndarray, int], list[list[Any]]], queries: np.ndarray, truth: np.ndarray,
          target: float) -> dict[str, Any]:
    """Raise ef until recall@10 reaches ``target``; qps one query at a time at that ef."""
    curve = []
    for ef in EF_SWEEP:
        qps, res = best_of({"one": lambda ef=ef: one(queries, ef)}, len(queries))
        rec = recall(res["one"], truth)
        curve.append((ef, rec, qps["one"]))
        if rec >= target:
            qps_at = qps["one"]
            if len(curve) > 1 and rec > curve[-2][1]:  # between two ef: the curve read at the target recall
                _, r0, q0 = curve[-2]
                qps_at = round(q0 + (target - r0) / (rec - r0) * (qps["one"] - q0), 1)
            return {"ef": ef, "recall@10": rec, "qps_1": qps["one"], "qps_at_target": qps_at, "curve": curve}
    return {"ef": None, "recall@10": curve[-1][1], "qps_1": curve[-1][2], "qps_at_target": None, "curve": curve}


def build_hnswlib(online: np.ndarray, m: int, efc: int) -> tuple[float, Callable[[np.ndarray, int], list[list[Any]]]]:
    import hnswlib

    index = hnswlib.Index(space="ip", dim=online.shape[1])
    index.init_index(max_elements=len(online), M=m, ef_construction=efc, random_seed=0)
    index.set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    index.add_items(online, np.arange(len(online)))
    build = time.perf_counter() - start
    index.set_num_threads(1)

    def one(qs: np.ndarray, ef: int) -> list[list[Any]]:
        index.set_ef(ef)
        return [index.knn_query(x[None, :], k=10)[0][0].tolist() for x in qs]

    return build, one


def build_faiss(online: np.ndarray, m: int, efc: int) -> tuple[float, Callable[[np.ndarray, int], list[list[Any]]]]:
    import faiss

    index = faiss.IndexHNSWFlat(online.shape[1], m, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = efc
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    start = time.perf_counter()
    index.add(online)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)

    def one(qs: np.ndarray, ef: int) -> list[list[Any]]:
        index.hnsw.efSearch = ef
        return [index.search(x[None, :], 10)[1][0].tolist() for x in qs]

    return build, one


def build_raw(index: EdgeIndex, data: SyntheticEmbeddings, folder: Path) -> tuple[float, Any]:
    """The engine alone, configured as the project's version is: same vectors, payloads, indexes."""
    import qdrant_edge as qe

    from visearch.index.edge import _SCHEMA

    info = index.current_version()
    assert info is not None
    online_dim, step = info.online_dim, index.settings.batch_size
    start = time.perf_counter()
    shard = qe.EdgeShard.create(str(folder), index._config(info))
    for name, kind in INDEXED_FIELDS.items():
        shard.update(qe.UpdateOperation.create_field_index(name, _SCHEMA[kind](enable_hnsw=name in GRAPH_FIELDS)))
    row = 0
    for batch in data.batches():
        full = unit(batch.vectors)
        online = unit(full[:, :online_dim])
        full_rows, online_rows = full.tolist(), online.tolist()
        payloads = batch.payloads or [{} for _ in batch.product_ids]
        for i in range(0, len(batch), step):
            points = [
                qe.Point(row + j, {"online": online_rows[j], "full": full_rows[j]}, {"product_id": pid, **payloads[j]})
                for j, pid in enumerate(batch.product_ids[i : i + step], start=i)
            ]
            shard.update(qe.UpdateOperation.upsert_points(points))
        row += len(batch)
    shard.optimize()
    shard.flush()
    seconds = time.perf_counter() - start
    shard.close()  # and served from its files, as the project's version is
    return seconds, qe.EdgeShard.load(str(folder))


def changes_for(data: SyntheticEmbeddings, fresh: np.ndarray, n_changes: int) -> ChangeSet:
    ids = data.product_ids()
    n_changed, n_new, n_price = int(n_changes * 0.6), int(n_changes * 0.2), int(n_changes * 0.1)
    n_gone = n_changes - n_changed - n_new - n_price
    rng = np.random.default_rng(1)
    rows = rng.permutation(len(ids))[: n_changed + n_price + n_gone]
    changed, priced, gone = rows[:n_changed], rows[n_changed : n_changed + n_price], rows[n_changed + n_price :]
    arts = data.articles()
    upserts = [
        {
            "product_id": ids[r],
            "vector": fresh[i],
            "payload": {"article": arts[r], "category": f"cat{int(data.categories[r]):02d}", "price": 999.0},
        }
        for i, r in enumerate(changed)
    ]
    upserts += [
        {
            "product_id": f"new{i:06d}",
            "vector": fresh[n_changed + i],
            "payload": {"article": str(90_000_000 + i), "category": "cat00", "price": 10.0},
        }
        for i in range(n_new)
    ]
    prices = [{"product_id": ids[r], "payload": {"price": 1.0, "rating": 4.5}} for r in priced]
    return ChangeSet.create(
        upserts=upserts, payload_updates=prices, deletes=[ids[r] for r in gone], source="bench changes"
    )


def run_size(n: int, queries: int, changes: int, workdir: Path, say: Tee, passes: int = PASSES) -> dict[str, Any]:
    import qdrant_edge as qe

    say(f"\n=== n = {n:,} ===")
    t0 = time.perf_counter()
    data = clustered_embeddings(n, queries=queries + changes, seed=0)
    q, fresh = data.queries[:queries], data.queries[queries:]
    settings = Settings(data_dir=workdir / f"n{n}")
    s = settings.index
    online, q_online = unit(data.vectors[:, : s.online_dim]), unit(q[:, : s.online_dim])
    truth, _ = exact_topk(online, q_online, 10)
    truth_full, _ = exact_topk(unit(data.vectors), unit(q), 10)
    say(f"data: {n:,} x 512 clustered vectors, {queries} queries, exact top-10 in {time.perf_counter() - t0:.0f} s")
    say(
        f"settings: m={s.hnsw_m} ef_construct={s.hnsw_ef_construct} ef={s.ef} rescore_limit={s.rescore_limit} "
        f"online_dim={s.online_dim} quantization={s.quantization} search_threads={s.search_threads}"
    )

    # ---- builds, every core
    index = open_index(settings)
    assert isinstance(index, EdgeIndex)
    built = index.build(data.batches(), total=n)
    ours_build = built.upsert_seconds + built.index_seconds
    say(f"build, visearch: {ours_build:.1f} s (upsert {built.upsert_seconds:.1f} s + graph {built.index_seconds:.1f} s)")
    raw_build, raw = build_raw(index, data, workdir / f"raw{n}")
    say(f"build, raw engine (same config, payloads and indexes): {raw_build:.1f} s")
    libs = {}
    for name, make in (("hnswlib", build_hnswlib), ("faiss", build_faiss)):
        seconds, one = make(online, s.hnsw_m, s.hnsw_ef_construct)
        libs[name] = {"build_seconds": round(seconds, 1), "one": one}
        say(f"build, {name} (fp32): {seconds:.1f} s")

    # ---- one thread: the project's index and the raw engine at the same settings
    params = search_params(s.ef, s.quantization != "none", True, s.oversampling)  # the index's own, int8 or not

    def request(x: np.ndarray) -> Any:
        return qe.QueryRequest(limit=10, query=qe.Query.Nearest(x, using="online"), params=params, with_payload=False)

    # the engine's other entry for a query without prefetches: search, which skips the query planner
    def search_request(x: np.ndarray) -> Any:
        return qe.SearchRequest(query=qe.Query.Nearest(x, using="online"), limit=10, params=params, with_payload=False)

    # every side keeps only the ids of a pass's answers (for the recall): a server drops its answers once sent,
    # and a pass that kept 1,000 answers' objects alive would time the garbage collector walking them
    def read(points: Any) -> list[int]:
        return [p.id for p in points]

    def names(hits: list[Any]) -> list[str]:
        return [h.product_id for h in hits]

    table = data.product_ids()  # both shards number points by input row

    def named(points: Any) -> list[str]:  # what a search must hand back: product ids and scores
        hits = [(table[p.id], p.score) for p in points]
        return [pid for pid, _ in hits]

    prebuilt = [request(x) for x in q_online]
    searches = [search_request(x) for x in q_online]
    info = index.current_version()
    assert info is not None
    # the engine on the very files the project's index serves: the same graph, so the layer alone differs
    same = qe.EdgeShard.load(str(index.store.shard_path(info.version)))
    runs = {
        "visearch hnsw, ids only": lambda: [names(index.search(x, 10, mode="hnsw", with_payload=False)) for x in q],
        "visearch hnsw, payload": lambda: [names(index.search(x, 10, mode="hnsw")) for x in q],
        f"visearch hnsw, {BATCH} a call": lambda: [
            names(hits) for i in range(0, len(q), BATCH)
            for hits in index.search_batch(q[i : i + BATCH], 10, mode="hnsw", with_payload=False)
        ],
        "visearch two-stage, payload": lambda: [names(index.search(x, 10)) for x in q],
        "raw engine, requests made beforehand": lambda: [read(same.query(r)) for r in prebuilt],
        "raw engine, a request made per query": lambda: [read(same.query(request(x))) for x in q_online],
        "raw engine, per query, named hits": lambda: [named(same.query(request(x))) for x in q_online],
        "raw engine, search entry, made beforehand": lambda: [read(same.search(r)) for r in searches],
        "raw engine, search entry, per query": lambda: [read(same.search(search_request(x))) for x in q_online],
        "raw engine on its own build": lambda: [read(raw.query(r)) for r in prebuilt],
        # the engine's own batch call: the ceiling any layer over it can reach for a batch
        f"raw engine, {BATCH} a call": lambda: [
            read(points) for i in range(0, len(prebuilt), BATCH)
            for points in same.query_batch(qe.QueryBatchRequest(prebuilt[i : i + BATCH]))
        ],
    }
    qps, results = best_of(runs, len(q), passes)
    row_of = {pid: i for i, pid in enumerate(table)}
    rec = {}
    for name, res in results.items():
        if name.startswith("raw") and "named" not in name:  # both shards number points by input row
            found = res
        else:
            found = [[row_of[pid] for pid in pids] for pids in res]
        rec[name] = recall(found, truth_full if "two-stage" in name else truth)
    for name in runs:
        say(f"{name:40s} recall@10 {rec[name]:.4f}  queries/s {qps[name]:9,.0f}")
    target = rec["visearch hnsw, ids only"]
    for name, lib in libs.items():
        r = sweep(lib.pop("one"), q_online, truth, target)
        lib.update(r)
        say(f"{name:40s} recall@10 {r['recall@10']:.4f}  queries/s {r['qps_1']:9,.0f}  (ef={r['ef']}, the first to reach "
            f"{target:.4f}; {r['qps_at_target'] or 0:,.0f} queries/s read off the curve at exactly that recall)")
        say(f"  {name} (ef, recall@10, queries/s): " + ", ".join(map(str, r["curve"])))
    raw.close()
    same.close()

    hnswlib_qps = libs["hnswlib"]["qps_at_target"] or libs["hnswlib"]["qps_1"]
    ratios = {
        "one query vs raw engine (requests made beforehand)": qps["visearch hnsw, ids only"] / qps["raw engine, requests made beforehand"],
        "one query vs raw engine (a request per query)": qps["visearch hnsw, ids only"] / qps["raw engine, a request made per query"],
        "one query vs raw engine (per query, named hits)": qps["visearch hnsw, ids only"] / qps["raw engine, per query, named hits"],
        "one query vs raw engine (search entry, made beforehand)":
            qps["visearch hnsw, ids only"] / qps["raw engine, search entry, made beforehand"],
        "one query vs raw engine (search entry, per query)":
            qps["visearch hnsw, ids only"] / qps["raw engine, search entry, per query"],
        f"{BATCH} a call vs hnswlib one at a time, equal recall": qps[f"visearch hnsw, {BATCH} a call"] / hnswlib_qps,
        f"raw engine {BATCH} a call vs hnswlib one at a time, equal recall": qps[f"raw engine, {BATCH} a call"] / hnswlib_qps,
        f"{BATCH} a call vs the raw engine's {BATCH} a call": qps[f"visearch hnsw, {BATCH} a call"] / qps[f"raw engine, {BATCH} a call"],
        "one query vs hnswlib, equal recall": qps["visearch hnsw, ids only"] / hnswlib_qps,
        "build vs raw engine": ours_build / raw_build,
        "build vs hnswlib": ours_build / libs["hnswlib"]["build_seconds"],
    }
    for name, value in ratios.items():
        say(f"ratio, {name}: {value:.2f}x")

    # ---- changes and footprint
    cs = changes_for(data, fresh, changes)
    update = index.update(cs)
    say(f"update of {len(cs):,} changes: {update.seconds:.1f} s (new {update.new}, changed {update.changed}, "
        f"price-only {update.payload_only}, deleted {update.deleted})")
    back = index.rollback()
    say(f"rollback {back.previous} -> {back.current.version}: {back.seconds * 1000:.1f} ms")
    stats = index.stats()
    say(f"bytes per product: {stats.memory_per_product:,.0f} RAM while serving, {stats.disk_per_product:,.0f} disk")
    index.close()
    shutil.rmtree(workdir / f"n{n}", ignore_errors=True)
    shutil.rmtree(workdir / f"raw{n}", ignore_errors=True)
    return {
        "n": n,
        "build_seconds": {"visearch": round(ours_build, 1), "raw engine": round(raw_build, 1),
                          **{k: v["build_seconds"] for k, v in libs.items()}},
        "qps_1": qps,
        "recall@10": rec,
        "libs": libs,
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "update_seconds": update.seconds,
        "rollback_ms": round(back.seconds * 1000, 1),
        "bytes_per_product": {"ram": round(stats.memory_per_product), "disk": round(stats.disk_per_product)},
    }


def targets(r: dict[str, Any]) -> dict[str, bool]:
    ratios, rec, qps = r["ratios"], r["recall@10"], r["qps_1"]
    checks = {
        "one query >= 0.9x the raw engine": ratios["one query vs raw engine (requests made beforehand)"] >= 0.9,
        f"{BATCH} a call >= 1.0x hnswlib at equal recall": ratios[f"{BATCH} a call vs hnswlib one at a time, equal recall"] >= 1.0,
        "build <= 1.2x the raw engine": ratios["build vs raw engine"] <= 1.2,
    }
    if r["n"] >= 1_000_000:
        checks["hnsw recall@10 >= 0.97 at >= 1,000 queries/s"] = (
            rec["visearch hnsw, ids only"] >= 0.97 and qps["visearch hnsw, ids only"] >= 1000
        )
        checks["two-stage recall@10 >= 0.97"] = rec["visearch two-stage, payload"] >= 0.97
    return checks


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[1])
    ap.add_argument("--sizes", default="200000,1000000", help="comma-separated catalog sizes")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--changes", type=int, default=10_000, help="size of the timed update")
    ap.add_argument("--out", type=Path, default=None, help="also write the output here")
    ap.add_argument("--workdir", type=Path, default=None, help="where the indexes go (default: a temp dir)")
    ap.add_argument("--check", action="store_true", help="fail if a target is missed")
    ap.add_argument("--passes", type=int, default=PASSES, help=(
        "timed passes per query run, the best kept (a pass of 1,000 queries lasts about a tenth of a second, "
        "so on a shared machine more passes steady the one-query ratios)"))
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    say = Tee(args.out)
    say(f"bench_index: sizes {sizes}, {args.queries} queries, {os.cpu_count()} cores, python {sys.version.split()[0]}")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="visearch-bench-"))
    results = [run_size(n, args.queries, min(args.changes, n // 10), workdir, say, args.passes) for n in sizes]
    say("\nsummary (JSON): " + json.dumps([{k: v for k, v in r.items() if k != "libs"} for r in results]))
    failed = []
    for r in results:
        for name, ok in targets(r).items():
            say(f"target at {r['n']:,}: {name}: {'met' if ok else 'MISSED'}")
            failed += [] if ok else [name]
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if (args.check and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
