#!/usr/bin/env python
"""Catalog vectorisation: the Ray Data job on a two-node local Ray cluster against the plain loop, same run.

    python bench/bench_vectorize.py [--data data/demo] [--products 400] [--actors 2] [--out FILE]

Both embed the same products' gallery photos with the registered embedder (VISEARCH_MODELS__EMBEDDER,
from VISEARCH_DATA_DIR's registry); the figure is gallery images per second, and the Ray job's vectors
are checked against the loop's (max |difference|). The cluster is two raylets on this machine
(ray.cluster_utils), each given half the cores: the scale model of a job that runs one actor per GPU node.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from _report import Tee


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("data/demo"))
    ap.add_argument("--products", type=int, default=400, help="the first N products of the catalog")
    ap.add_argument("--actors", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not (args.data / "products.parquet").is_file():
        print(f"no catalog at {args.data}: run make demo first (or pass --data)", file=sys.stderr)
        return 1

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    from ray.cluster_utils import Cluster

    from training.vectorize import vectorize_catalog
    from training.vectorize_ray import vectorize_on_ray
    from visearch.config import get_settings

    settings = get_settings()
    work = Path(tempfile.mkdtemp(prefix="bench-vectorize-"))
    say = Tee(args.out)
    try:
        table = pq.read_table(args.data / "products.parquet").slice(0, args.products)
        subset = work / "catalog"
        subset.mkdir()
        pq.write_table(table, subset / "products.parquet")
        for uris in table.column("image_uris").to_pylist():
            for u in uris:
                (subset / u).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(args.data / u, subset / u)  # a link out of the folder would be refused
        images = sum(len(u) for u in table.column("image_uris").to_pylist())

        start = time.perf_counter()
        vectorize_catalog(subset, settings, work / "plain.parquet", progress=False)
        plain_s = time.perf_counter() - start

        cores = os.cpu_count() or 2
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": max(1, cores // 2)})
        cluster.add_node(num_cpus=max(1, cores - cores // 2))
        cluster.wait_for_nodes()
        try:
            summary = vectorize_on_ray(str(subset), settings, str(work / "shards"), address=cluster.address,
                                       actors=args.actors)
        finally:
            import ray

            ray.shutdown()
            cluster.shutdown()
        ray_s = summary["seconds"]

        plain = pq.read_table(work / "plain.parquet").to_pydict()
        shards = pq.read_table(sorted((work / "shards").glob("*.parquet"))).to_pydict()
        a = dict(zip(plain["product_id"], plain["vector"], strict=True))
        b = dict(zip(shards["product_id"], shards["vector"], strict=True))
        diff = max(float(np.abs(np.asarray(a[p]) - np.asarray(b[p])).max()) for p in a)
        for line in (
            f"{len(a)} products, {images} gallery images, embedder {summary['embedder']}, {cores} cores",
            f"plain loop: {plain_s:.1f} s, {images / plain_s:.1f} images/s",
            f"Ray Data on {summary['nodes']} nodes, {summary['actors']} actor(s) of {args.actors} asked: {ray_s:.1f} s (start-up included), "
            f"{images / ray_s:.1f} images/s ({plain_s / ray_s:.2f}x the loop); {summary['shards']} shards",
            f"vectors equal: max |difference| {diff:.2e} ({'within' if diff < 1e-5 else 'NOT within'} 1e-5)",
        ):
            say(line)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
