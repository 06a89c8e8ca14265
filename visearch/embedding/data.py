"""What the embedder learns and is measured on: gallery photos, shopper crops, pairs.

A shopper crop is cut the way search will cut it: the detector's box, simulated as the
ground-truth box with each side moved by up to ``jitter`` of the box size, so training
sees the loose and tight crops that search sees. Jitter draws from a stream per
(seed, object, variant), so a crop is the same on every run and can be cached.

A pair is (one gallery photo of a product, one shopper crop of the same product);
cleaning drops near-duplicate pairs and outliers using the backbone's own embeddings.

>>> jitter_box((10, 10, 50, 90), 100, 100, 0.1, np.random.default_rng(0))  # doctest: +SKIP
(8, 12, 53, 88)
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from visearch.catalog import read_catalog
from visearch.embedding.head import centred
from visearch.errors import DatasetError, InvalidArgumentError
from visearch.vision.images import load_image

__all__ = ["Dataset", "ImageItem", "open_dataset", "jitter_box", "load_item", "card_text", "CleanReport", "clean_pairs", "group_by"]

SPLITS = ("train", "val", "test")
_MIN_CROP = 8  # px: a jittered box never shrinks below this


@dataclass(frozen=True)
class ImageItem:
    """One image the backbone sees: a file, optionally cropped to ``box``, of ``product``."""

    path: str  # relative to the data set root
    product: str
    box: tuple[int, int, int, int] | None = None
    obj: int = -1  # scene object row for shopper crops, -1 for gallery photos

    @property
    def key(self) -> str:
        return f"{self.path}|{self.box}" if self.box else self.path


@dataclass
class Dataset:
    """The tables of a WB-Synth set, read once."""

    root: Path
    products: dict[str, list[Any]]
    scenes: dict[str, list[Any]]
    fingerprint: str
    index: dict[str, int] = field(default_factory=dict)

    def split_products(self, split: str) -> list[str]:
        return [p for p, s in zip(self.products["product_id"], self.products["split"], strict=True) if s == split]

    def product(self, pid: str) -> dict[str, Any]:
        i = self.index[pid]
        return {k: v[i] for k, v in self.products.items()}

    def gallery_items(self, split: str) -> list[ImageItem]:
        """Every seller photo of the split's products, product by product."""
        out = []
        for pid in self.split_products(split):
            for uri in self.products["image_uris"][self.index[pid]]:
                out.append(ImageItem(uri, pid))
        return out

    def scene_objects(self, split: str) -> list[int]:
        """Rows of ``scenes`` (one per object in a shopper photo) in ``split``."""
        return [i for i, s in enumerate(self.scenes["split"]) if s == split]

    def shopper_items(self, split: str, variants: int, jitter: float, seed: int) -> list[ImageItem]:
        """``variants`` jittered crops of every object photographed in ``split`` (variant-major per object)."""
        if variants < 1:
            raise InvalidArgumentError(f"crops per object must be at least 1, got {variants}")
        sc = self.scenes
        out = []
        for row in self.scene_objects(split):
            box = (int(sc["x1"][row]), int(sc["y1"][row]), int(sc["x2"][row]), int(sc["y2"][row]))
            for v in range(variants):
                rng = np.random.default_rng(np.random.SeedSequence([seed, row, v]))
                jittered = jitter_box(box, int(sc["width"][row]), int(sc["height"][row]), jitter, rng)
                out.append(ImageItem(sc["image"][row], sc["product_id"][row], jittered, row))
        return out


def open_dataset(data: Path) -> Dataset:
    """Read a WB-Synth set's products and shopper-photo objects.

    Raises:
        DatasetError: not a WB-Synth folder, or tables without the needed columns.
    """
    data = Path(data)
    if not data.is_dir():
        raise DatasetError(f"{data}: no such data set folder; make one with visearch synth --out {data}")
    need_p = ("product_id", "split", "title", "description", "image_uris")
    need_s = {"split", "image", "product_id", "x1", "y1", "x2", "y2", "width", "height"}
    products = read_catalog(data, required=need_p).to_pydict()
    if not (data / "scenes.parquet").is_file():
        raise DatasetError(f"{data}: no scenes.parquet; is it a WB-Synth data set? (visearch synth --out {data})")
    try:
        scenes = pq.read_table(data / "scenes.parquet").to_pydict()
    except Exception as e:  # noqa: BLE001 - pyarrow raises several types for damaged files
        raise DatasetError(f"{data}: cannot read scenes.parquet ({type(e).__name__}: {e})") from None
    if not need_s <= set(scenes):
        raise DatasetError(f"{data}: scenes.parquet needs {sorted(need_s)}")
    manifest = data / "manifest.json"
    ident = manifest.read_bytes() if manifest.is_file() else json.dumps([products["product_id"], scenes["image"]]).encode()
    fingerprint = hashlib.sha256(ident).hexdigest()[:16]
    index = {pid: i for i, pid in enumerate(products["product_id"])}
    missing = {p for p in scenes["product_id"] if p not in index}
    if missing:
        raise DatasetError(f"{data}: scenes.parquet names {len(missing)} products missing from products.parquet")
    return Dataset(data, products, scenes, fingerprint, index)


def jitter_box(box: tuple[int, int, int, int], width: int, height: int, jitter: float,
               rng: np.random.Generator) -> tuple[int, int, int, int]:
    """``box`` with each side moved by up to ``jitter`` of the box's size, kept inside the photo."""
    x1, y1, x2, y2 = box
    bw, bh = max(1, x2 - x1), max(1, y2 - y1)
    dx1, dx2 = rng.uniform(-jitter, jitter, 2) * bw
    dy1, dy2 = rng.uniform(-jitter, jitter, 2) * bh
    nx1, nx2 = int(round(max(0, x1 + dx1))), int(round(min(width, x2 + dx2)))
    ny1, ny2 = int(round(max(0, y1 + dy1))), int(round(min(height, y2 + dy2)))
    if nx2 - nx1 < _MIN_CROP or ny2 - ny1 < _MIN_CROP:  # degenerate: fall back to the true box
        return (max(0, x1), max(0, y1), min(width, x2), min(height, y2))
    return nx1, ny1, nx2, ny2


def load_item(root: Path, item: ImageItem) -> Image.Image:
    """The image of ``item`` (cropped when it has a box), through the one image loader."""
    img = load_image(root / item.path)
    return img.crop(item.box) if item.box else img


def card_text(product: dict[str, Any]) -> str:
    """What the text tower reads for a product: its title, then its description."""
    return f"{product['title']}. {product['description']}"


@dataclass(frozen=True)
class CleanReport:
    """What cleaning removed; ``keep`` is a mask over the input pairs."""

    keep: np.ndarray
    pairs: int
    near_duplicates: int
    outliers: int
    outlier_threshold: float
    capped: bool = False

    def counts(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "near_duplicates": self.near_duplicates, "outliers": self.outliers,
                "kept": int(self.keep.sum()), "outlier_threshold": round(self.outlier_threshold, 4), "capped": self.capped}


def _cap(flag: np.ndarray, badness: np.ndarray, limit: int) -> tuple[np.ndarray, bool]:
    """Keep only the ``limit`` worst flagged pairs (largest ``badness``)."""
    idx = np.flatnonzero(flag)
    if len(idx) <= limit:
        return flag, False
    out = np.zeros_like(flag)
    out[idx[np.argsort(-badness[idx], kind="stable")[:limit]]] = True
    return out, True


def clean_pairs(gallery: torch.Tensor, shopper: torch.Tensor, dup_threshold: float = 0.98, outlier_z: float = 3.5,
                max_share: float = 0.1, block: int = 2048) -> CleanReport:
    """Drop near-duplicate pairs and outliers, judged by the backbone's embeddings.

    Args:
        gallery: (n, d) the gallery side of each pair (e.g. the mean of the product's photos).
        shopper: (n, d) the shopper side of each pair.
        dup_threshold: two pairs are near-duplicates when both sides are at least this
            similar (cosine after centring); the later one is dropped. Same-product repeats
            add nothing and different products that look identical are false negatives.
        outlier_z: a pair whose gallery-shopper similarity is more than this many robust
            standard deviations (MAD) below the median is an outlier: the crop missed
            the product, or the product is mostly hidden.
        max_share: at most this share of the pairs is dropped as each kind; beyond it the
            embeddings (a weak backbone) are the problem, not the data, so only the most
            extreme are dropped and ``capped`` says so.
    """
    n = len(gallery)
    if len(shopper) != n:
        raise InvalidArgumentError(f"clean_pairs: {n} gallery vectors but {len(shopper)} shopper vectors")
    if n == 0:
        return CleanReport(np.zeros(0, bool), 0, 0, 0, 0.0)
    unit = torch.nn.functional.normalize
    g, s = centred(unit(gallery.float(), dim=-1)), centred(unit(shopper.float(), dim=-1))
    sim = (g * s).sum(-1).numpy()
    median = float(np.median(sim))
    mad = float(np.median(np.abs(sim - median))) * 1.4826
    threshold = median - outlier_z * mad if mad > 0 else -np.inf
    limit = int(max_share * n)
    outlier, capped_o = _cap(sim < threshold, -sim, limit)
    dup = np.zeros(n, bool)
    dup_sim = np.zeros(n, np.float32)
    for start in range(0, n, block):
        stop = min(n, start + block)
        both = torch.minimum(s[start:stop] @ s.T, g[start:stop] @ g.T).numpy()
        for i, row in enumerate(both, start=start):
            if dup[i] or outlier[i]:
                continue
            later = np.flatnonzero(row[i + 1 :] >= dup_threshold) + i + 1
            later = later[~outlier[later] & ~dup[later]]
            dup[later] = True
            dup_sim[later] = row[later]
    dup, capped_d = _cap(dup, dup_sim, limit)
    keep = ~(dup | outlier)
    return CleanReport(keep, n, int(dup.sum()), int(outlier.sum()), float(threshold), capped_o or capped_d)


def group_by(values: list[str]) -> dict[str, list[int]]:
    """Positions of each distinct value."""
    out: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(values):
        out[v].append(i)
    return dict(out)
