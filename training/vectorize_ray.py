"""Vectorise a catalog on a Ray cluster with Ray Data: the catalog read in blocks, a pool of embedder actors
(a GPU each on a cluster with GPUs, CPUs here), Parquet shards written by the workers.

The catalog and its photos may be a local folder or an object store prefix (``s3://bucket/wb``; the
endpoint and credentials come from the usual AWS variables, ``AWS_ENDPOINT_URL`` for a local S3), and so
may the output; ``visearch index build --vectors DIR`` reads the shards. Each batch of products goes
through :func:`training.vectorize.product_vectors_of`, the one rule of a product's vector, so the vectors
equal the single-machine loop's.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from visearch.catalog import PRODUCTS_FILE, image_key
from visearch.config import Settings
from visearch.errors import DatasetError, InvalidArgumentError

__all__ = ["vectorize_on_ray"]


def _filesystem(uri: str) -> tuple[Any, str]:
    """(pyarrow filesystem, path in it) for a local path or an ``s3://`` URI."""
    import pyarrow.fs as pafs

    if uri.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        fs = pafs.S3FileSystem(endpoint_override=endpoint, region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                               scheme="http" if endpoint and endpoint.startswith("http://") else "https")
        return fs, uri.removeprefix("s3://")
    if "://" in uri:
        raise InvalidArgumentError(f"{uri}: the catalog must be a local path or an s3:// URI")
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


class _EmbedProducts:
    """One actor of the pool: loads the embedder once, then turns batches of products into vectors."""

    def __init__(self, settings: dict[str, Any], ref: str, root: str) -> None:
        from visearch.embedding.embedder import Embedder
        from visearch.vision.images import ImageLimits

        self.settings = Settings(**settings)
        self.embedder = Embedder.from_ref(ref, self.settings)
        self.limits = ImageLimits.from_settings(self.settings.vision)
        self.fs, self.root = _filesystem(root)

    def _photo(self, uri: str) -> Any:
        from visearch.vision.images import load_image

        with self.fs.open_input_file(f"{self.root}/{image_key(uri)}") as f:
            return load_image(f.read(), self.limits)

    def __call__(self, batch: Any) -> Any:
        from training.vectorize import product_vectors_of, vectors_table

        rows = batch.to_pydict()
        photos = [[self._photo(u) for u in (uris or [])] for uris in rows["image_uris"]]
        return vectors_table(*product_vectors_of(self.embedder, rows["product_id"], photos))


def vectorize_on_ray(data: str, settings: Settings, out: str, *, ref: str | None = None, address: str | None = None,
                     actors: int = 2, batch_products: int | None = None) -> dict[str, Any]:
    """Embed every product of the catalog at ``data`` (a data set folder or prefix holding products.parquet and
    the photos) on the Ray cluster at ``address`` (None: start or join a local one) into Parquet shards at ``out``.

    Returns a summary: products, shards, seconds, the embedder, actors.
    """
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq
    import ray

    from visearch.registry import pin_model

    if actors < 1:
        raise InvalidArgumentError(f"actors must be >= 1, got {actors}")
    root = data.removesuffix("/" + PRODUCTS_FILE).rstrip("/")
    fs, path = _filesystem(root)
    if fs.get_file_info(f"{path}/{PRODUCTS_FILE}").type.name != "File":
        raise DatasetError(f"{root}: no {PRODUCTS_FILE} (a data set folder or prefix holding the catalog)")
    pinned = pin_model(ref or settings.models.embedder, settings)  # resolve the alias once, for every actor
    if not ray.is_initialized():
        # the workers read the same object store the driver does: its endpoint and credentials go with the job
        aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
        ray.init(address=address, log_to_driver=False, configure_logging=False, runtime_env={"env_vars": aws})
    gpus = 1 if settings.embedding.device.startswith("cuda") else 0
    if not gpus:  # CPU actors hold a core each: leave one for the read and write tasks, or the job never ends
        actors = min(actors, max(1, int(ray.cluster_resources().get("CPU", 1)) - 1))
    started = time.perf_counter()
    ds = ray.data.read_parquet(f"{path}/{PRODUCTS_FILE}", filesystem=fs, columns=["product_id", "image_uris"])
    vectors = ds.map_batches(
        _EmbedProducts, batch_format="pyarrow", batch_size=batch_products or max(1, settings.embedding.batch_size // 4), concurrency=actors,
        num_cpus=0 if gpus else 1, num_gpus=gpus,
        fn_constructor_kwargs={"settings": settings.model_dump(mode="json"), "ref": pinned.ref, "root": root},
    )
    out_fs, out_path = _filesystem(out)
    vectors.write_parquet(out_path, filesystem=out_fs)
    seconds = time.perf_counter() - started
    shards = [f for f in out_fs.get_file_info(pafs.FileSelector(out_path)) if f.path.endswith(".parquet")]
    products = sum(pq.ParquetFile(out_fs.open_input_file(f.path)).metadata.num_rows for f in shards)
    if not products:
        raise DatasetError(f"{root}: no product has a gallery photo to embed")
    return {"products": products, "shards": len(shards), "out": out, "seconds": round(seconds, 1),
            "embedder": pinned.label, "actors": actors, "engine": "ray", "nodes": len(ray.nodes())}
