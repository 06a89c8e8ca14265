"""Backbone tokens computed once and kept on disk.

The backbone is frozen, so its patch tokens for a photo never change: training the head
for many epochs, training a baseline beside it, and evaluating again all read the same
tokens. A set of images is stored under the backbone's content fingerprint and a hash
of the data set and the exact crops, so a different backbone, data set or jitter never
reuses stale tokens::

    <token_cache>/<backbone fingerprint>/<name>-<items hash>/
        tokens.npy   (n, N, D) float16, memory-mapped when read
        pooled.npy   (n, dim)  float32, the backbone's own pooled output
        meta.json    counts, shapes, what it was made from

A set is written into a ``.partial`` folder and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from visearch.embedding.backbone import Backbone
from visearch.embedding.data import Dataset, ImageItem
from visearch.progress import track
from visearch.vision.images import load_image

__all__ = ["CachedTokens", "TokenCache"]


@dataclass(frozen=True)
class CachedTokens:
    """Tokens and pooled vectors of a list of images, row for row."""

    tokens: np.ndarray
    pooled: np.ndarray
    path: Path
    reused: bool

    def __len__(self) -> int:
        return len(self.tokens)


class TokenCache:
    """Named sets of backbone tokens under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def folder(self, backbone: Backbone, dataset: Dataset, name: str, items: Sequence[ImageItem]) -> Path:
        h = hashlib.sha256(f"{dataset.fingerprint}\n{backbone.image_size}\n".encode())
        for item in items:
            h.update(item.key.encode())
            h.update(b"\n")
        return self.root / backbone.fingerprint / f"{name}-{h.hexdigest()[:16]}"

    def get(self, backbone: Backbone, dataset: Dataset, name: str, items: Sequence[ImageItem],
            progress: bool = True) -> CachedTokens:
        """Tokens of ``items``: read from the cache, or computed, written and then read."""
        folder = self.folder(backbone, dataset, name, items)
        if (folder / "meta.json").is_file():
            return self._read(folder, reused=True)
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        n = len(items)
        tokens = np.lib.format.open_memmap(partial / "tokens.npy", mode="w+", dtype=np.float16,
                                           shape=(n, backbone.n_tokens, backbone.width))
        pooled = np.lib.format.open_memmap(partial / "pooled.npy", mode="w+", dtype=np.float32, shape=(n, backbone.dim))
        t0 = time.perf_counter()
        bs = backbone.batch_size
        batches = range(0, n, bs)
        for start, pixels in track(zip(batches, _pixel_batches(backbone, dataset.root, items), strict=True), len(batches),
                                   f"backbone tokens: {name}", enabled=progress):
            t, p = backbone.encode(backbone.normalize(pixels))
            tokens[start : start + len(t)] = t.numpy().astype(np.float16)
            pooled[start : start + len(p)] = p.numpy()
        tokens.flush()
        pooled.flush()
        del tokens, pooled
        meta = {"name": name, "count": n, "tokens": [backbone.n_tokens, backbone.width], "dim": backbone.dim,
                "backbone": backbone.ref, "backbone_fingerprint": backbone.fingerprint, "data": str(dataset.root),
                "data_fingerprint": dataset.fingerprint, "seconds": round(time.perf_counter() - t0, 2)}
        (partial / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        if folder.exists():  # another process finished the same set first
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.rename(folder)
        return self._read(folder, reused=False)

    @staticmethod
    def _read(folder: Path, reused: bool) -> CachedTokens:
        return CachedTokens(np.load(folder / "tokens.npy", mmap_mode="r"), np.load(folder / "pooled.npy"), folder, reused)


def _pixel_batches(backbone: Backbone, root: Path, items: Sequence[ImageItem]) -> Iterator[np.ndarray]:
    """uint8 batches of ``items``, decoded one batch ahead in a thread (decoding releases the GIL)."""
    bs = backbone.batch_size

    def load(start: int) -> np.ndarray:
        last: tuple[str, Image.Image] | None = None  # crops of one photo come together
        out = []
        for item in items[start : start + bs]:
            if last is None or last[0] != item.path:
                last = (item.path, load_image(root / item.path))
            img = last[1].crop(item.box) if item.box else last[1]
            out.append(backbone.to_pixels(img))
        return np.stack(out)

    with ThreadPoolExecutor(1) as pool:
        pending = None
        for start in range(0, len(items), bs):
            nxt = pool.submit(load, start)
            if pending is not None:
                yield pending.result()
            pending = nxt
        if pending is not None:
            yield pending.result()
