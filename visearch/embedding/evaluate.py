"""Offline evaluation of the embedder: shopper crops against product vectors.

Queries are the shopper photos of held-out products, cut at their boxes with the
detector-like jitter; the gallery is every held-out product (``gallery="split"``) or,
as a shopper meets it, every product of every split (``gallery="all"``), one vector
each (the normalised mean of its seller photos' vectors, as the index stores it). For every MRL
size the report gives Recall@1/5/10, mAP@10 (one relevant product per query, so it is
the reciprocal rank cut at 10), and precision / F1 at the best threshold on the top-1
score (accept the top match when its score clears the threshold, else answer "not
found"). Two baselines are measured in the same run on the same crops:

* ``frozen``: the backbone's own pooled (MAP) vector, at its own size (``dim``), in
  the slot of the head's full size;
* ``truncated``: the same head trained with one 512-d loss, then cut to each size.

Ties count against the model (a collapsed embedding does not score by luck).
"""

from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from visearch.config import Settings
from visearch.embedding.backbone import Backbone
from visearch.embedding.data import SPLITS, Dataset, ImageItem, group_by, open_dataset
from visearch.embedding.embedder import Embedder, load_head
from visearch.embedding.head import AttentionHead, slice_normalize
from visearch.embedding.tokens import CachedTokens, TokenCache
from visearch.errors import DatasetError, InvalidArgumentError

__all__ = ["eval_embeddings", "retrieval_metrics", "product_vectors", "EVAL_SEED", "GALLERIES", "EvalSet", "eval_set",
           "score_head", "score_frozen"]

EVAL_SEED = 10_007  # jitter stream of evaluation crops, apart from the training ones
_KS = (1, 5, 10)
#: what the queries are searched among: the held-out split's products, or the whole catalog
GALLERIES = ("split", "all")


def retrieval_metrics(scores: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Recall@1/5/10, mAP@10, and precision / F1 / threshold of the best top-1 cut.

    Args:
        scores: (queries, products) similarities.
        truth: (queries,) column of each query's product.
    """
    q = len(truth)
    if q == 0:
        raise InvalidArgumentError("no queries to evaluate")
    true_score = scores[np.arange(q), truth]
    rank = (scores >= true_score[:, None]).sum(1)  # pessimistic on ties
    out = {f"recall@{k}": float((rank <= k).mean()) for k in _KS}
    out["map@10"] = float(np.where(rank <= 10, 1.0 / rank, 0.0).mean())
    top = scores.max(1)
    order = np.argsort(-top, kind="stable")
    correct = (rank == 1)[order]
    tp = np.cumsum(correct)
    precision = tp / np.arange(1, q + 1)
    recall = tp / q
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    best = int(np.argmax(f1))
    out.update(precision=float(precision[best]), f1=float(f1[best]), threshold=float(top[order][best]))
    return {k: round(v, 4) for k, v in out.items()}


def product_vectors(vectors: torch.Tensor, owners: list[str], products: list[str]) -> torch.Tensor:
    """One vector per product: the normalised mean of its photos' normalised vectors."""
    by = group_by(owners)
    v = torch.nn.functional.normalize(vectors.float(), dim=-1)
    return torch.nn.functional.normalize(torch.stack([v[by[p]].mean(0) for p in products]), dim=-1)


class _RowChain:
    """Rows of several token arrays read as one, without loading them: the whole catalog's
    tokens would not fit in memory, and each split's are cached already."""

    def __init__(self, parts: list[np.ndarray]) -> None:
        self.parts = parts
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, step = rows.indices(len(self))
        if step != 1:
            raise InvalidArgumentError("token rows are read in contiguous slices")
        pieces = [p[max(start - a, 0) : min(stop - a, len(p))]
                  for p, a in zip(self.parts, self.starts[:-1], strict=True) if start < a + len(p) and stop > a]
        return np.concatenate(pieces) if len(pieces) != 1 else pieces[0]


class EvalSet:
    """Cached tokens of a gallery's photos and a split's shopper crops, with who is who."""

    def __init__(self, dataset: Dataset, gallery: list[ImageItem], queries: list[ImageItem], g: CachedTokens, q: CachedTokens,
                 kind: str = "split") -> None:
        self.dataset, self.gallery, self.queries, self.g, self.q, self.kind = dataset, gallery, queries, g, q, kind
        self.products = sorted({i.product for i in gallery})
        col = {p: i for i, p in enumerate(self.products)}
        self.truth = np.array([col[i.product] for i in queries])
        self.owners = [i.product for i in gallery]


def _gallery_tokens(cache: TokenCache, backbone: Backbone, dataset: Dataset, splits: tuple[str, ...],
                    progress: bool) -> tuple[list[ImageItem], CachedTokens]:
    """Gallery photos of ``splits`` and their tokens, cached split by split (training reuses them)."""
    items: list[ImageItem] = []
    parts: list[CachedTokens] = []
    for split in splits:
        mine = dataset.gallery_items(split)
        if mine:
            items += mine
            parts.append(cache.get(backbone, dataset, f"{split}-gallery", mine, progress))
    if len(parts) == 1:
        return items, parts[0]
    tokens = _RowChain([p.tokens for p in parts])
    pooled = np.concatenate([np.asarray(p.pooled) for p in parts])
    return items, CachedTokens(tokens, pooled, parts[0].path, all(p.reused for p in parts))  # type: ignore[arg-type]


def eval_set(dataset: Dataset, split: str, backbone: Backbone, settings: Settings, progress: bool = True,
             gallery: str = "split") -> EvalSet:
    """Tokens of the gallery (``split``'s products, or every split's with ``gallery="all"``) and of ``split``'s
    jittered shopper crops (computed once, then cached). The queries are the same whichever the gallery."""
    if gallery not in GALLERIES:
        raise InvalidArgumentError(f"--gallery must be {' or '.join(GALLERIES)}, got {gallery!r}")
    pids = {i.product for i in dataset.gallery_items(split)}
    queries = [i for i in dataset.shopper_items(split, 1, settings.embedding.jitter, EVAL_SEED) if i.product in pids]
    if not pids or not queries:
        raise DatasetError(f"{dataset.root}: the {split} split has no products with shopper photos to evaluate on")
    cache = TokenCache(settings.embedding.token_cache or settings.data_dir / "token-cache")
    items, g = _gallery_tokens(cache, backbone, dataset, (split,) if gallery == "split" else SPLITS, progress)
    q = cache.get(backbone, dataset, f"{split}-queries", queries, progress)
    return EvalSet(dataset, items, queries, g, q, gallery)


def _score(query: torch.Tensor, gallery: torch.Tensor, es: EvalSet, dims: tuple[int, ...]) -> dict[str, dict[str, float]]:
    out = {}
    for d in dims:
        p = product_vectors(gallery[:, :d], es.owners, es.products)
        out[str(d)] = retrieval_metrics((slice_normalize(query, d) @ p.T).numpy(), es.truth)
    return out


@torch.inference_mode()
def score_head(head: AttentionHead, es: EvalSet, dims: tuple[int, ...] | None = None) -> dict[str, dict[str, float]]:
    """Metrics of ``head`` at each prefix size on an :class:`EvalSet`."""
    def full(tokens: np.ndarray) -> torch.Tensor:
        return torch.cat([head.full(torch.from_numpy(np.array(tokens[s : s + 256], dtype=np.float32))).float()
                          for s in range(0, len(tokens), 256)])

    return _score(full(es.q.tokens), full(es.g.tokens), es, dims or head.dims)


def score_frozen(es: EvalSet, slot: int) -> dict[str, dict[str, Any]]:
    """The backbone's pooled output at its own size, reported in the ``slot`` (full-size) row."""
    dim = es.g.pooled.shape[1]
    metrics = _score(torch.from_numpy(np.asarray(es.q.pooled)), torch.from_numpy(np.asarray(es.g.pooled)), es, (dim,))
    return {str(slot): {**metrics[str(dim)], "dim": dim}}


def _plot(report: dict[str, Any], title: str) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    dims = sorted(int(d) for d in report["head"])
    for name, block, style in (("MRL head", report["head"], "-o"), ("single-512 head, truncated", report["baselines"].get("truncated"), "--s")):
        if block:
            for k, alpha in (("recall@10", 1.0), ("recall@1", 0.5)):
                ax.plot(dims, [block[str(d)][k] for d in dims], style, alpha=alpha, label=f"{name} {k}")
    frozen = next(iter(report["baselines"]["frozen"].values()))
    ax.axhline(frozen["recall@10"], color="grey", ls=":", label=f"frozen backbone ({frozen['dim']}-d) recall@10")
    ax.axhline(frozen["recall@1"], color="grey", ls=":", alpha=0.5, label=f"frozen backbone ({frozen['dim']}-d) recall@1")
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(d) for d in dims])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("vector size (MRL prefix)")
    ax.set_ylabel("recall")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def eval_embeddings(data: Path, settings: Settings, ref: str | None = None, split: str = "test",
                    baseline: str | None = None, progress: bool = True,
                    gallery: str = "split") -> tuple[dict[str, Any], Image.Image]:
    """Retrieval quality of the embedder on ``split`` with both baselines; the report and its PNG.

    Args:
        data: any WB-Synth data set (its held-out split need not be the trained one's).
        ref: embedder reference; default ``settings.models.embedder``.
        baseline: the single-512 head; default the one the embedder's card names.
        gallery: ``split`` searches the held-out products only; ``all`` every product of every
            split, as a shopper searches the whole catalog (the queries stay the same).
    """
    if split not in ("train", "val", "test"):
        raise InvalidArgumentError(f"--split must be train, val or test, got {split!r}")
    if gallery not in GALLERIES:
        raise InvalidArgumentError(f"--gallery must be {' or '.join(GALLERIES)}, got {gallery!r}")
    os.environ.setdefault("MPLCONFIGDIR", str((settings.data_dir / "matplotlib").resolve()))
    start = time.perf_counter()
    dataset = open_dataset(data)
    ref = ref or settings.models.embedder
    embedder = Embedder.from_ref(ref, settings)
    es = eval_set(dataset, split, embedder.backbone, settings, progress, gallery=gallery)
    report: dict[str, Any] = {"head": score_head(embedder.head, es)}
    baselines: dict[str, Any] = {"frozen": score_frozen(es, embedder.out_dim), "truncated": None}
    baseline = baseline or embedder.card.get("baseline")
    if baseline:
        single, _, _ = load_head(str(baseline), settings)
        baselines["truncated"] = score_head(single, es, embedder.dims)
    report["baselines"] = baselines
    bb = embedder.backbone.describe()
    report.update(
        n_queries=len(es.queries), n_products=len(es.products), gallery=gallery, n_gallery_photos=len(es.gallery),
        n_query_products=len(set(es.truth.tolist())), split=split, model=ref,
        model_card=embedder.card.get("summary", ""), backbone=bb["ref"], backbone_card=bb["summary"],
        baseline_model=baseline, data=str(Path(data).resolve()), seconds=round(time.perf_counter() - start, 1),
    )
    if not baseline:
        report["note"] = "the embedder's card names no single-512 baseline head; pass --baseline to measure one"
    origin = ("trained on synthetic data, NOT pretrained SigLIP 2" if bb["pretrained_siglip2"] is False
              else "see its model card")
    title = (f"{ref} on WB-Synth {split} ({report['n_queries']} crops; gallery {gallery}: {report['n_products']} products)\n"
             f"backbone {bb['ref']}: {origin}")
    return report, _plot(report, title)
