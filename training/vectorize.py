"""Vectorise a catalog: one full Matryoshka vector per product, from its gallery photos.

A product's vector is the L2-normalised mean of its seller photos' vectors (the same
rule the embedding evaluation uses), written as ``product_id, vector`` Parquet that
``visearch index build --vectors`` reads. On one machine it is this batched loop; on a Ray
cluster the same batches run as a Ray Data job (training/vectorize_ray.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from visearch.catalog import catalog_path, image_path, read_catalog
from visearch.config import Settings
from visearch.embedding.embedder import Embedder
from visearch.errors import DatasetError
from visearch.progress import track
from visearch.vision.images import ImageLimits, load_image

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["vectorize_catalog", "product_vectors_of", "vectors_table", "write_vectors", "catalog_vectors", "catalog_matrix"]


def vectorize_catalog(data: Path, settings: Settings, out: Path, ref: str | None = None, progress: bool = True) -> dict:
    """Embed every product of the catalog of ``data`` (a data set folder or its products.parquet) and write ``out``.

    Returns a summary. Gallery photos are read from the data set folder (the catalog's).
    """
    catalog = catalog_path(data)
    rows = read_catalog(catalog, columns=["product_id", "image_uris"]).to_pydict()
    root = catalog.parent
    embedder = Embedder.from_ref(ref or settings.models.embedder, settings)
    limits = ImageLimits.from_settings(settings.vision)
    batch = max(1, settings.embedding.batch_size // 4)  # products per step; each has a few photos
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    starts = range(0, len(rows["product_id"]), batch)
    for start in track(starts, len(starts), "vectorising catalog", progress):
        uris = rows["image_uris"][start : start + batch]
        photos = [[load_image(image_path(root, u), limits) for u in us] for us in uris]
        got, vecs = product_vectors_of(embedder, rows["product_id"][start : start + batch], photos)
        ids += got
        vectors += list(vecs)
    if not ids:
        raise DatasetError(f"{catalog}: no product has a gallery photo to embed")
    out.parent.mkdir(parents=True, exist_ok=True)
    matrix = np.stack(vectors).astype(np.float32)
    write_vectors(out, ids, matrix)
    return {"products": len(ids), "dim": int(matrix.shape[1]), "out": str(out), "embedder": embedder.ref}


def product_vectors_of(embedder: Embedder, product_ids: Sequence[str],
                       photos: Sequence[Sequence[Image.Image]]) -> tuple[list[str], np.ndarray]:
    """One forward pass over a batch of products' photos: each product's L2-normalised mean vector (products
    without a photo are left out). The one rule of a product's vector, wherever the batch was read."""
    flat = [p for ps in photos for p in ps]
    if not flat:
        return [], np.zeros((0, embedder.out_dim), np.float32)
    vec = embedder.embed(flat)
    ids, out, at = [], [], 0
    for pid, ps in zip(product_ids, photos, strict=True):
        if ps:
            mean = vec[at : at + len(ps)].mean(axis=0)
            out.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
            ids.append(pid)
        at += len(ps)
    return ids, np.stack(out).astype(np.float32)


def vectors_table(ids: Sequence[str], matrix: np.ndarray) -> pa.Table:
    """``product_id, vector`` (fixed-size float32 lists), as ``visearch index build --vectors`` reads it."""
    dim = matrix.shape[1] if matrix.ndim == 2 else 0
    return pa.table({"product_id": pa.array(list(ids), pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1), pa.float32()), dim)})


def write_vectors(path: Path, ids: Sequence[str], matrix: np.ndarray) -> None:
    pq.write_table(vectors_table(ids, matrix), path)


def catalog_vectors(data: Path, settings: Settings, ref: str, progress: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """Every product's vector by the embedder at ``ref``, cached per data set and embedder version
    (ranker, tag and refiner training all search the catalog the way the service does)."""
    from visearch.embedding.data import open_dataset
    from visearch.registry import pin_model

    pinned = pin_model(ref, settings)
    dataset = open_dataset(data)
    path = settings.data_dir / "vectors" / "ranker" / f"{dataset.fingerprint}-{pinned.label.replace('/', '-')}.parquet"
    if not path.is_file():
        vectorize_catalog(data, settings, path, ref=pinned.ref, progress=progress)
    t = pq.read_table(path).to_pydict()
    return {p: np.asarray(v, np.float32) for p, v in zip(t["product_id"], t["vector"], strict=True)}, pinned.label


def catalog_matrix(data: Path, settings: Settings, ref: str, progress: bool = True) -> tuple[list[str], np.ndarray]:
    """:func:`catalog_vectors` as product ids (sorted) and the matching rows of one (n, dim) matrix."""
    vectors, _ = catalog_vectors(data, settings, ref, progress)
    pids = sorted(vectors)
    return pids, np.stack([vectors[p] for p in pids])
