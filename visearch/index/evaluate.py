"""How good and how fast the index is: recall against brute force, queries per second, bytes per product.

The data is :func:`~visearch.index.synthetic.clustered_embeddings` (its module says
why it looks like a catalog's MRL embeddings); the eval reports the local intrinsic
dimensionality it measured, with the mean cosine of random pairs and of each
query's nearest neighbour, so a reader can judge the data. ``from_index``
evaluates a built index on its own vectors instead: each query is one of its
products, left out of its own results and ground truth.

Modes, each at its default settings: ``hnsw`` (stage 1 alone, recall against
exact search over the online slice), ``two_stage`` (HNSW + 512-d rescore, recall
against exact 512-d search) and ``article`` (payload-index lookup, recall against
a scan of the articles). ``qps_1`` is one thread issuing one query at a time (the best of
three passes, the one other work on the machine disturbed least);
``qps_all`` is one process per core doing the same on the same index (the
engine holds the GIL while it searches, so processes, as Serve replicas are, are
how it uses every core). ``bytes_per_product`` is the RAM the serving version
needs (online vectors, graph, payload indexes, id tracker: from its files);
``rss_bytes_per_product`` is what a fresh process's resident memory grew by
after opening the index and running the queries.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from visearch.config import IndexSettings, Settings
from visearch.errors import InvalidArgumentError, NotFoundError, VisearchError
from visearch.index.base import VectorIndex
from visearch.index.metrics import exact_topk, local_intrinsic_dim, recall_at_k
from visearch.index.synthetic import clustered_embeddings

__all__ = ["measure_index", "evaluate_index"]

MODES = ("hnsw", "two_stage", "article")
#: qps_1 is the best of this many passes over the queries: the one least disturbed by other work
PASSES = 3


# ---------------------------------------------------------------------- timing
def _run_mode(index: VectorIndex, mode: str, queries: Any, k: int) -> list[list[str]]:
    if mode == "article":
        return [[h.product_id for h in index.lookup_article(a, limit=k)] for a in queries]
    return [[h.product_id for h in index.search(q, k, mode=mode, with_payload=False)] for q in queries]  # type: ignore[arg-type]


def _rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0  # pragma: no cover - Linux always has VmRSS


def _qps_worker_main() -> None:  # pragma: no cover - runs in a child process; its output is checked by the eval tests
    """Child side of :func:`_parallel_qps`: open the index, then time each mode when told "go"."""
    from visearch.index import open_index

    workdir, rank, workers, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    settings = IndexSettings.model_validate_json(Path(workdir, "settings.json").read_text(encoding="utf-8"))
    # import the backend before the baseline: its code is not memory per product
    importlib.import_module(f"visearch.index.{settings.backend}")
    base = _rss()
    queries = np.load(Path(workdir, "queries.npy"))[rank::workers]
    articles = json.loads(Path(workdir, "articles.json").read_text(encoding="utf-8"))[rank::workers]
    work = {"hnsw": queries, "two_stage": queries, "article": articles}
    index = open_index(settings)
    try:
        for mode in MODES:
            _run_mode(index, mode, work[mode][:20], k)  # warm the caches
            print("ready", flush=True)
            if sys.stdin.readline().strip() != "go":
                return
            start = time.perf_counter()
            _run_mode(index, mode, work[mode], k)
            print(
                json.dumps({"mode": mode, "count": len(work[mode]), "seconds": time.perf_counter() - start}), flush=True
            )
        print(json.dumps({"mode": "rss", "count": _rss() - base, "seconds": 0.0}), flush=True)
    finally:
        index.close()


def _parallel_qps(
    settings: IndexSettings, queries: np.ndarray, articles: list[str], k: int, workers: int
) -> tuple[dict[str, float], int]:
    """Queries per second with ``workers`` processes searching at once; and one worker's RSS growth.

    Plain subprocesses, released together per mode, rather than multiprocessing:
    spawning re-imports the parent's ``__main__``, which for ``python -m visearch``
    is the CLI itself.
    """
    with tempfile.TemporaryDirectory(prefix="visearch-qps-") as workdir:
        Path(workdir, "settings.json").write_text(settings.model_dump_json(), encoding="utf-8")
        np.save(Path(workdir, "queries.npy"), np.asarray(queries, dtype=np.float32))
        Path(workdir, "articles.json").write_text(json.dumps(articles), encoding="utf-8")
        code = "from visearch.index.evaluate import _qps_worker_main as m; m()"
        logs = [open(Path(workdir, f"worker{w}.log"), "w+", encoding="utf-8") for w in range(workers)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, workdir, str(w), str(workers), str(k)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=logs[w],
                text=True,
            )
            for w in range(workers)
        ]

        def line(w: int) -> str:
            out = procs[w].stdout.readline() if procs[w].stdout else ""
            if not out:
                procs[w].wait(timeout=60)
                logs[w].seek(0)
                tail = logs[w].read()[-2000:]
                raise VisearchError(f"qps worker {w} exited with code {procs[w].returncode}: {tail.strip()}")
            return out

        got: dict[str, list[tuple[int, float]]] = {m: [] for m in MODES}
        rss: list[int] = []
        try:
            for _mode in MODES:
                for w in range(workers):
                    line(w)  # "ready"
                for p in procs:
                    assert p.stdin is not None
                    p.stdin.write("go\n")
                    p.stdin.flush()
                for w in range(workers):
                    r = json.loads(line(w))
                    got[r["mode"]].append((r["count"], r["seconds"]))
            for w in range(workers):
                rss.append(int(json.loads(line(w))["count"]))
        finally:
            for p in procs:
                if p.poll() is None:
                    try:
                        p.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        p.kill()
                        p.wait()
            for fh in logs:
                fh.close()
    qps = {m: sum(c for c, _ in got[m]) / max(max(s for _, s in got[m]), 1e-9) for m in MODES}
    return qps, max(rss)


# ---------------------------------------------------------------------- eval
def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def measure_index(
    index_settings: IndexSettings,
    *,
    ids: list[str],
    articles: list[str | None],
    base: np.ndarray,
    queries: np.ndarray,
    exclude: np.ndarray | None = None,
    k: int = 10,
    workers: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Recall and speed of each mode on a built index whose contents are ``ids`` / ``base``.

    Args:
        index_settings: where the index is (opened here, and by each ``qps_all`` worker).
        ids, articles, base: the indexed products, their articles and full vectors (unit rows).
        queries: full query vectors (unit rows).
        exclude: for each query, the row of ``base`` it was taken from (leave-one-out).
        k: the k of recall@k.
        workers: processes for ``qps_all`` (default: one per core).
        seed: seed of the article sample.
        progress: called with a line of text at each step.
    """
    from visearch.index import open_index

    say = progress or (lambda _msg: None)
    workers = workers or os.cpu_count() or 1
    if k < 1 or workers < 1:
        raise InvalidArgumentError(f"k and workers must be >= 1; got {k}, {workers}")
    index = open_index(index_settings)
    try:
        info = index.current_version()
        if info is None:
            raise NotFoundError(f"no index built at {index.location}")
        dim = info.online_dim
        say("exact search for the ground truth")
        gt_online, s_online = exact_topk(_unit(base[:, :dim]), _unit(queries[:, :dim]), max(k, 100), exclude=exclude)
        gt_full, s_full = exact_topk(base, queries, k, exclude=exclude)
        by_article: dict[str, list[str]] = {}
        for pid, a in zip(ids, articles, strict=True):
            if a is not None:
                by_article.setdefault(a, []).append(pid)
        rng = np.random.default_rng(seed + 3)
        known = list(by_article)
        art_queries = [known[i] for i in rng.choice(len(known), size=min(len(queries), len(known)), replace=False)]
        truth = {
            "hnsw": [[ids[j] for j in row[:k]] for row in gt_online],
            "two_stage": [[ids[j] for j in row[:k]] for row in gt_full],
            "article": [sorted(by_article[a])[:k] for a in art_queries],
        }
        work: dict[str, Any] = {"hnsw": list(queries), "two_stage": list(queries), "article": art_queries}
        self_ids = [ids[r] for r in exclude] if exclude is not None else None
        modes: dict[str, dict[str, float | None]] = {}
        for mode in MODES:
            say(f"{mode}: one thread")
            kk = k + 1 if (self_ids is not None and mode != "article") else k
            _run_mode(index, mode, work[mode][:50], kk)
            seconds = float("inf")
            for _ in range(PASSES):
                start = time.perf_counter()
                found = _run_mode(index, mode, work[mode], kk)
                seconds = min(seconds, time.perf_counter() - start)
            if self_ids is not None and mode != "article":
                found = [[p for p in f if p != me][:k] for f, me in zip(found, self_ids, strict=True)]
            # a mode with nothing to ask (an index without articles) has no figures, not zeros
            modes[mode] = {
                f"recall@{k}": round(recall_at_k(found, truth[mode], k), 4) if work[mode] else None,
                "qps_1": round(len(work[mode]) / seconds, 1) if work[mode] else None,
            }
        stats = index.stats()
    finally:
        index.close()
    say(f"all cores: {workers} processes")
    qps_all, rss = _parallel_qps(index_settings, np.asarray(queries), art_queries, k, workers)
    for mode in MODES:
        modes[mode]["qps_all"] = round(qps_all[mode], 1) if work[mode] else None
    pairs = base[np.random.default_rng(seed + 5).integers(0, len(base), (2, min(2000, len(base))))]
    return {
        "online_dim": dim,
        "full_dim": int(base.shape[1]),
        "queries": len(queries),
        "k": k,
        "settings": {
            "hnsw_m": info.hnsw_m,
            "hnsw_ef_construct": info.hnsw_ef_construct,
            "quantization": info.quantization,
            "ef": index_settings.ef,
            "rescore_limit": index_settings.rescore_limit,
        },
        "data": {
            "lid@100": round(local_intrinsic_dim(s_online[:, :100]), 1) if s_online.shape[1] > 2 else None,
            "random_pair_cos": round(float(np.mean(np.sum(pairs[0] * pairs[1], axis=1))), 3),
            "nn1_cos": round(float(np.mean(s_full[:, 0])), 3),
        },
        "modes": modes,
        "bytes_per_product": round(stats.memory_per_product, 1),
        "rss_bytes_per_product": round(rss / max(1, len(ids)), 1),
        "disk_bytes_per_product": round(stats.disk_per_product, 1),
        "workers": workers,
    }


def evaluate_index(
    settings: Settings,
    *,
    n: int = 100_000,
    online_dim: int | None = None,
    seed: int = 0,
    queries: int = 1000,
    from_index: bool = False,
    workers: int | None = None,
    k: int = 10,
    workdir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Recall@k of each mode against brute force, QPS on one thread and on all cores, bytes per product.

    Args:
        settings: the settings whose index parameters (m, ef_construct, ef, rescore
            limit, quantization) are evaluated; with ``from_index`` also the index to read.
        n: products to generate (synthetic data only).
        online_dim: HNSW slice for the synthetic index (default ``settings.index.online_dim``).
        seed: seed of the synthetic data and of the query sample.
        queries: number of queries per mode.
        from_index: evaluate the built index on its own vectors instead of synthetic data.
        workers: processes for ``qps_all`` (default: one per core).
        k: the k of recall@k.
        workdir: where the temporary synthetic index goes (default: the system temp dir).
        progress: called with a line of text at each step.

    Returns:
        the JSON-ready report described in the module doc.
    """
    from visearch.index import open_index

    say = progress or (lambda _msg: None)
    if queries < 1:
        raise InvalidArgumentError(f"queries must be >= 1, got {queries}")
    if from_index:
        with open_index(settings) as index:
            info = index.current_version()
            if info is None:
                raise NotFoundError(f"no index built at {index.location}; build one or drop --from-index")
            say(f"reading the vectors of {info.version} ({info.points:,} products)")
            ids: list[str] = []
            arts: list[str | None] = []
            parts: list[np.ndarray] = []
            for batch in index.export():
                ids.extend(batch.product_ids)
                parts.append(batch.vectors)
                arts.extend((p or {}).get("article") for p in (batch.payloads or []))
        base = _unit(np.concatenate(parts))
        rows = np.random.default_rng(seed).choice(len(ids), size=min(queries, len(ids)), replace=False)
        measured = measure_index(
            settings.index,
            ids=ids,
            articles=arts,
            base=base,
            queries=base[rows],
            exclude=rows,
            k=k,
            workers=workers,
            seed=seed,
            progress=progress,
        )
        report = {"n": len(ids), "source": f"index {info.version}", "build_seconds": None, **measured}
    else:
        dim = online_dim or settings.index.online_dim
        say(f"generating {n:,} clustered {settings.index.full_dim}-d vectors (seed {seed})")
        data = clustered_embeddings(n, dim=settings.index.full_dim, seed=seed, queries=queries)
        tmp = tempfile.mkdtemp(prefix="visearch-eval-", dir=workdir)
        try:
            index_settings = settings.index.model_copy(
                update={"backend": "edge", "path": Path(tmp), "online_dim": dim, "url": None, "api_key": None}
            )
            say(f"building the index (m={index_settings.hnsw_m}, ef_construct={index_settings.hnsw_ef_construct})")
            with open_index(index_settings) as index:
                built = index.build(data.batches(), total=n)
            measured = measure_index(
                index_settings,
                ids=data.product_ids(),
                articles=list(data.articles()),
                base=data.vectors,
                queries=data.queries,
                k=k,
                workers=workers,
                seed=seed,
                progress=progress,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        report = {
            "n": n,
            "source": "synthetic",
            "build_seconds": round(built.upsert_seconds + built.index_seconds, 2),
            **measured,
        }
    json.dumps(report)  # the report must stay JSON-ready
    return report
