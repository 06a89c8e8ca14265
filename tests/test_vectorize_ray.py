"""``visearch vectorize --engine ray``: a Ray Data job on a real two-node Ray cluster (two raylets on this
machine, started by the test), reading the catalog from a folder and from a local S3 server (moto's server
mode, on loopback: no cloud account here, and the test says so); vectors equal the single-process loop's."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CLUSTER = """
import sys
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2})
cluster.add_node(num_cpus=2)  # two actors and the read and write tasks beside them
cluster.wait_for_nodes()
print(cluster.address, flush=True)
sys.stdin.read()  # until the test closes our stdin
cluster.shutdown()
"""
NO_TOKEN = {"RAY_AUTH_MODE": "disabled"}  # the cluster and the CLI run under different HOMEs: no shared token


@pytest.fixture(scope="module")
def two_nodes():
    proc = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **NO_TOKEN})
    try:
        address = proc.stdout.readline().strip()
        assert address, "the two-node cluster did not start"
        yield address
    finally:
        proc.stdin.close()
        proc.wait(timeout=120)


def vectors_of(table) -> dict[str, np.ndarray]:
    t = table.to_pydict()
    return {p: np.asarray(v, np.float32) for p, v in zip(t["product_id"], t["vector"], strict=True)}


@pytest.fixture(scope="module")
def plain(tiny_models: Path, tiny_synth: Path, tmp_path_factory) -> dict[str, np.ndarray]:
    from tests.conftest import run_cli

    out = tmp_path_factory.mktemp("plain") / "plain.parquet"
    r = run_cli(tiny_models, "vectorize", "--data", str(tiny_synth), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]
    return vectors_of(pq.read_table(out))


def test_ray_data_on_two_nodes_equals_the_plain_loop(two_nodes, plain, tiny_models, tiny_synth, tmp_path, cli):
    out = tmp_path / "shards"
    r = cli(tiny_models, "vectorize", "--data", str(tiny_synth), "--engine", "ray", "--address", two_nodes,
            "--out", str(out), "--actors", "2", "--json", env=NO_TOKEN)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout)
    assert summary["nodes"] == 2 and summary["products"] == len(plain) and summary["shards"] >= 1
    got = vectors_of(pq.read_table(sorted(out.glob("*.parquet"))))
    assert set(got) == set(plain)
    assert max(float(np.abs(got[p] - plain[p]).max()) for p in plain) < 1e-5
    # the index is built from the shards as from one file
    r = cli(tiny_models, "index", "build", "--vectors", str(out), "--catalog", str(tiny_synth / "products.parquet"),
            "--name", "ray", "--quiet")
    assert r.returncode == 0, r.stderr[-2000:]


def test_a_catalog_in_s3_and_shards_written_back(two_nodes, plain, tiny_models, tiny_synth, cli):
    import boto3
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        aws = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        s3 = boto3.client("s3", endpoint_url=aws["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
        s3.create_bucket(Bucket="catalog")
        s3.upload_file(str(tiny_synth / "products.parquet"), "catalog", "wb/products.parquet")
        for uris in pq.read_table(tiny_synth / "products.parquet", columns=["image_uris"]).column(0).to_pylist():
            for u in uris:
                s3.upload_file(str(tiny_synth / u), "catalog", f"wb/{u}")
        r = cli(tiny_models, "vectorize", "--data", "s3://catalog/wb", "--engine", "ray", "--address", two_nodes,
                "--out", "s3://catalog/vectors", "--json", env={**NO_TOKEN, **aws})
        assert r.returncode == 0, r.stderr[-3000:]
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="catalog", Prefix="vectors/")["Contents"]
                if o["Key"].endswith(".parquet")]
        assert keys
        got: dict[str, np.ndarray] = {}
        for key in keys:
            body = s3.get_object(Bucket="catalog", Key=key)["Body"].read()
            got.update(vectors_of(pq.read_table(pa.BufferReader(body))))
        assert set(got) == set(plain)
        assert max(float(np.abs(got[p] - plain[p]).max()) for p in plain) < 1e-5
        # a prefix without a catalog is one clear line
        r = cli(tiny_models, "vectorize", "--data", "s3://catalog/nothing", "--engine", "ray", "--address", two_nodes,
                env={**NO_TOKEN, **aws})
        assert r.returncode == 1 and "no products.parquet" in r.stderr.strip().splitlines()[-1]
    finally:
        server.stop()
