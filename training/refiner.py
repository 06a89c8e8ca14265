"""Train the text refiner and register it as ``visearch-refiner``; evaluate any version.

WB-Synth's triplets come from product variants: (anchor product, a shopper's text naming one
change of colour or pattern, the variant with that change), in Russian or English. The refiner
learns from every photo of a train-split anchor (seller photos and jittered shopper crops) to
move its vector onto the target's catalog vector, with the whole catalog as the classes of a
softmax (what search will rank it against). Figures: held-out triplets, the anchor as a shopper
crop, the target's rank among every product of the catalog, against two baselines measured on
the same queries: the crop alone (image only) and the text alone (the text tower against the
backbone's own image vectors of the catalog, the space it was trained to match).

Beside the head, the refiner keeps a vocabulary that reads the text as the attributes it asks
for, learned from the train sets' catalog titles and train triplets (the same alias learning as
the tag vocabulary: a word names a value when nearly every product it is said of has it). Its
figures: the target's rank when the products with the asked attributes come first (what search
does), against the crop with those same attributes first, so the head's own part shows.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F

from training.recipes import pick_recipe
from training.vectorize import catalog_matrix
from visearch.config import Settings
from visearch.embedding.data import Dataset, open_dataset
from visearch.embedding.embedder import Embedder
from visearch.embedding.evaluate import product_vectors
from visearch.embedding.photo_vectors import PhotoVectors, crop_vectors, gallery_vectors
from visearch.embedding.refiner import Refiner, RefinerHead
from visearch.embedding.tokens import TokenCache
from visearch.errors import DatasetError
from visearch.progress import track
from visearch.registry import ModelStore, pin_model
from visearch.registry.card import ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder
from visearch.tags.vocabulary import TagVocabulary

__all__ = ["RefinerRecipe", "RECIPES", "MODEL_NAME", "train_refiner", "eval_refiner"]

MODEL_NAME = "visearch-refiner"
_KS = (1, 10)


@dataclass(frozen=True)
class RefinerRecipe:
    name: str
    steps: int
    batch_size: int = 256
    lr: float = 1e-3
    hidden: int = 512
    temperature: float = 0.05
    dropout: float = 0.0
    weight_decay: float = 1e-4
    eval_every: int = 100
    note: str = ""


RECIPES: dict[str, RefinerRecipe] = {
    # small and strongly regularised: a thousand anchors are easy to memorise (train top-1 0.97, held-out top-10
    # 0.30 unregularised at 512 wide and 1,000 steps; 0.37 like this, on data/eval2k)
    "quick": RefinerRecipe("quick", steps=300, hidden=256, dropout=0.3, weight_decay=0.05,
                           note="under a minute on 2 cores once photos are embedded"),
    "full": RefinerRecipe("full", steps=500, hidden=256, dropout=0.3, weight_decay=0.05, note="for the default bundle"),
    "tiny": RefinerRecipe("tiny", steps=20, batch_size=32, hidden=64, eval_every=10, note="smoke test only"),
}


def _triplets(data: Path) -> dict[str, dict[str, list[Any]]]:
    """The set's triplets by split (the anchor's), each as columns; a split with none is empty."""
    path = Path(data) / "triplets.parquet"
    if not path.is_file():
        raise DatasetError(f"{data}: no triplets.parquet (anchor, text, target); is it a WB-Synth data set?")
    t = pq.read_table(path).to_pydict()
    out: dict[str, dict[str, list[Any]]] = defaultdict(lambda: {k: [] for k in t})
    for i, split in enumerate(t["split"]):
        for k, v in t.items():
            out[split][k].append(v[i])
    return out


@dataclass
class _Queries:
    """One row per (triplet, anchor photo): the photo's vector, the text's row, the target's catalog column."""

    vectors: torch.Tensor
    texts: torch.Tensor
    targets: torch.Tensor
    triplet: np.ndarray  # which triplet each row asks
    meta: dict[str, list[Any]]  # the triplets' columns (change, lang, ...)


def _queries(triplets: dict[str, list[Any]], photos: PhotoVectors, fallback: PhotoVectors | None, text_vec: dict[str, torch.Tensor],
             column: dict[str, int]) -> _Queries:
    rows_of: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(photos.products):
        rows_of[p].append(i)
    back_of: dict[str, list[int]] = defaultdict(list)
    if fallback is not None:
        for i, p in enumerate(fallback.products):
            back_of[p].append(i)
    vecs, texts, targets, which = [], [], [], []
    for n, (a, text, b) in enumerate(zip(triplets["anchor_product_id"], triplets["text"], triplets["target_product_id"],
                                         strict=True)):
        if b not in column:
            continue
        found = [photos.vectors[i] for i in rows_of.get(a, [])]
        if not found and fallback is not None:  # an anchor never photographed by a shopper: its seller photo
            found = [fallback.vectors[i] for i in back_of.get(a, [])[:1]]
        for v in found:
            vecs.append(v)
            texts.append(text_vec[text])
            targets.append(column[b])
            which.append(n)
    if not vecs:
        raise DatasetError("no triplet has a photo of its anchor and its target in the catalog")
    return _Queries(torch.from_numpy(np.stack(vecs).astype(np.float32)), torch.stack(texts).float(),
                    torch.tensor(targets), np.array(which), triplets)


def _text_vocabulary(tables: dict[Path, dict[str, dict[str, list[Any]]]]) -> TagVocabulary:
    """Which words name which attribute value, from each set's catalog titles and its train triplets' texts (each text
    said of its target: "однотонный" is said of solid targets only, though no title holds it)."""
    rows: list[dict[str, Any]] = []
    for d, table in tables.items():
        products = pq.read_table(Path(d) / "products.parquet").to_pylist()
        rows += products
        by_id = {r["product_id"]: r for r in products}  # ids repeat across sets: each set's triplets, its own catalog
        train = table["train"]
        rows += [{**by_id[b], "title": text} for b, text in zip(train["target_product_id"], train["text"], strict=True)
                 if b in by_id]
    return TagVocabulary.from_catalog(rows)


def _preferred(scores: torch.Tensor, wanted: list[list[tuple[str, str]]], attributes: dict[str, np.ndarray]) -> torch.Tensor:
    """Scores with the products that have every asked attribute ahead of the rest (search's filter, then the rest)."""
    bonus = torch.zeros_like(scores)
    for i, want in enumerate(wanted):
        if want:
            has = np.logical_and.reduce([attributes[f] == v for f, v in want])
            bonus[i] = torch.from_numpy(has.astype(np.float32)) * 4.0  # unit vectors: similarities lie in [-1, 1]
    return scores + bonus


def _wanted(refiner: Refiner, queries: _Queries) -> list[list[tuple[str, str]]]:
    """Each query's asked attributes as (facet, value), read once per distinct text."""
    texts = queries.meta["text"]
    read = {t: [(tag.facet, tag.text) for tag in refiner.wanted(t)] for t in set(texts)}
    return [read[texts[n]] for n in queries.triplet]


def _catalog_attributes(data: Path, pids: list[str], facets: Sequence[str]) -> dict[str, np.ndarray]:
    """Each facet's canonical value per catalog column (as the vocabulary writes it)."""
    from visearch.tags.vocabulary import attribute_tags

    rows = {r["product_id"]: r for r in pq.read_table(Path(data) / "products.parquet").to_pylist()}
    out = {f: np.full(len(pids), "", dtype=object) for f in facets}
    for i, p in enumerate(pids):
        for tag in attribute_tags(rows[p], facets):
            out[tag.facet][i] = tag.text
    return out


def _ranks(scores: torch.Tensor, targets: torch.Tensor) -> np.ndarray:
    true = scores[torch.arange(len(targets)), targets]
    return ((scores > true[:, None]).sum(1) + 1).numpy()


def _figures(ranks: np.ndarray) -> dict[str, float]:
    return {f"top{k}": round(float((ranks <= k).mean()), 4) for k in _KS}


def _catalog(data: Path, settings: Settings, ref: str, progress: bool) -> tuple[list[str], torch.Tensor]:
    pids, matrix = catalog_matrix(data, settings, ref, progress)
    return pids, torch.from_numpy(matrix)


def train_refiner(data: Path, settings: Settings, recipe: str = "quick", alias: str | None = None,
                  progress: bool = True, more: Sequence[Path] = ()) -> ModelCard:
    """Train ``recipe`` on the train-split triplets of ``data`` (and of the ``more`` data sets, each against its own
    catalog, all catalogs one softmax); registers a version with its held-out figures on ``data``."""
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    pinned = pin_model(settings.models.embedder, settings)
    embedder = Embedder.from_ref(pinned.ref, settings)
    bb = embedder.backbone
    sets = [Path(data), *map(Path, more)]
    tables = {d: _triplets(d) for d in sets}
    val_split = "val" if tables[sets[0]]["val"]["text"] else "test"
    texts = sorted({x for d in sets for s in ("train", val_split) for x in tables[d][s]["text"]})
    text_vec = dict(zip(texts, bb.encode_text(texts), strict=True))
    blocks: list[torch.Tensor] = []
    parts: list[_Queries] = []
    for d in sets:
        dataset = open_dataset(d)
        pids, block = _catalog(d, settings, pinned.ref, progress)
        offset = sum(len(b) for b in blocks)  # each set's products after the sets before it in the one softmax
        column = {p: offset + i for i, p in enumerate(pids)}
        gallery = gallery_vectors(dataset, "train", embedder, settings, progress)
        crops = crop_vectors(dataset, "train", embedder, settings, held_out=False, progress=progress)
        photos = PhotoVectors(np.concatenate([gallery.vectors, crops.vectors]), gallery.items + crops.items)
        parts.append(_queries(tables[d]["train"], photos, None, text_vec, column))
        if d == sets[0]:
            val_catalog, val_pids = block, pids
            val = _queries(tables[d][val_split], crop_vectors(dataset, val_split, embedder, settings, held_out=True,
                                                              progress=progress),
                           gallery_vectors(dataset, val_split, embedder, settings, progress), text_vec,
                           {p: i for i, p in enumerate(pids)})
        blocks.append(block)
    catalog = torch.cat(blocks)
    train = _Queries(torch.cat([q.vectors for q in parts]), torch.cat([q.texts for q in parts]),
                     torch.cat([q.targets for q in parts]),
                     np.concatenate([q.triplet + 1_000_000 * n for n, q in enumerate(parts)]), {})

    torch.manual_seed(settings.seed)
    head = RefinerHead(embedder.out_dim, bb.dim, rec.hidden, rec.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=rec.lr, weight_decay=rec.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=rec.lr, total_steps=rec.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(settings.seed)
    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k: v for k, v in asdict(rec).items() if k != "name"},
              "data": ",".join(str(d.resolve()) for d in sets),
              "embedder": pinned.label, "backbone": bb.ref, "train_queries": len(train.targets),
              "train_triplets": len(set(train.triplet.tolist())), "catalog": len(catalog)}
    with ModelRecorder(store, "refiner", f"refiner-{rec.name}", params, tags={"recipe": rec.name}) as recorder:
        for step in track(range(1, rec.steps + 1), rec.steps, "refiner", progress):
            head.train()
            rows = torch.randint(0, len(train.targets), (min(rec.batch_size, len(train.targets)),), generator=gen)
            out = head(train.vectors[rows], train.texts[rows])
            loss = F.cross_entropy(out @ catalog.T / rec.temperature, train.targets[rows])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if step % rec.eval_every == 0 or step == rec.steps:
                head.eval()
                with torch.no_grad():
                    ranks = _ranks(head(val.vectors, val.texts) @ val_catalog.T, val.targets)
                recorder.curve({"loss": float(loss.detach()), **{f"val_{k}": v for k, v in _figures(ranks).items()}}, step)
        head.eval()
        vocabulary = _text_vocabulary(tables)
        meta = {"embedder": pinned.ref, "backbone": bb.ref, "temperature": rec.temperature,
                "vocabulary": {"tags": len(vocabulary), "aliases": len(vocabulary.aliases)}}
        refiner = Refiner(head, bb, meta, "", vocabulary)
        wanted = _wanted(refiner, val)
        attributes = _catalog_attributes(sets[0], val_pids, refiner.facets)
        with torch.no_grad():
            vector_only = head(val.vectors, val.texts) @ val_catalog.T
            held = _figures(_ranks(_preferred(vector_only, wanted, attributes), val.targets))
            image_only = _figures(_ranks(val.vectors @ val_catalog.T, val.targets))
        folder = refiner.save(settings.data_dir / "runs" / "refiner" / f"{recorder.run_id}-{rec.name}")
        card = ModelCard(
            name=MODEL_NAME, task="refiner", recipe=rec.name,
            arch=f"gated residual MLP over (crop {embedder.out_dim}-d, text tower {bb.dim}-d) → {embedder.out_dim}-d",
            summary=(f"a crop's vector moved by a short Russian or English text ('same but red') onto the product meant, "
                     f"in the space of {pinned.label}; trained on WB-Synth variant triplets (synthetic data); recipe '{rec.name}'"),
            data=data_provenance(data), command=train_command("refiner", data, rec.name, also=[str(d) for d in sets[1:]] or None),
            val_split=val_split,
            val_metrics={**held, "vector_only": _figures(_ranks(vector_only, val.targets)),
                         "baselines": {"image_only": image_only}, "n_queries": len(val.targets)},
            train_seconds=round(time.time() - started, 1), note=rec.note, embedder=pinned.ref, backbone=bb.ref,
        )
        return recorder.register(folder, card, alias=alias)


def _backbone_catalog(dataset: Dataset, bb: Any, settings: Settings, pids: list[str], progress: bool) -> torch.Tensor:
    """The catalog's products by the backbone's own image tower (the space its text tower was trained to match)."""
    cache = TokenCache(settings.embedding.token_cache or settings.data_dir / "token-cache")
    pooled, owners = [], []
    for split in ("train", "val", "test"):
        items = dataset.gallery_items(split)
        if items:
            pooled.append(np.asarray(cache.get(bb, dataset, f"{split}-gallery", items, progress).pooled))
            owners += [i.product for i in items]
    return product_vectors(torch.from_numpy(np.concatenate(pooled)), owners, pids)


def eval_refiner(data: Path, settings: Settings, ref: str, split: str = "test", progress: bool = True) -> dict[str, Any]:
    """Top-1 / top-10 of the target among the whole catalog for ``split``'s triplets of ``data`` (the refined vector, the
    products with the text's attributes first), with the head's vector alone and three baselines: the crop alone, the
    text alone, and the crop with the text's attributes first (what the head adds over reading the words)."""
    pinned = pin_model(ref, settings)
    refiner = Refiner.from_ref(pinned.ref, settings)
    embedder = Embedder.from_ref(refiner.embedder, settings, backbone=refiner.backbone)
    dataset = open_dataset(data)
    triplets = _triplets(data)[split]
    if not triplets["text"]:
        raise DatasetError(f"{data}: no {split}-split triplets to evaluate on")
    pids, catalog = _catalog(data, settings, refiner.embedder, progress)
    column = {p: i for i, p in enumerate(pids)}
    texts = sorted(set(triplets["text"]))
    text_vec = dict(zip(texts, refiner.encode_texts(texts), strict=True))
    q = _queries(triplets, crop_vectors(dataset, split, embedder, settings, held_out=True, progress=progress),
                 gallery_vectors(dataset, split, embedder, settings, progress), text_vec, column)
    wanted = _wanted(refiner, q)
    attributes = _catalog_attributes(data, pids, refiner.facets)
    with torch.no_grad():
        vector_only = refiner.head(q.vectors, q.texts) @ catalog.T
        refined = _ranks(_preferred(vector_only, wanted, attributes), q.targets)
        image = q.vectors @ catalog.T
        image_only = _ranks(image, q.targets)
        image_attributes = _ranks(_preferred(image, wanted, attributes), q.targets)
        text_only = _ranks(q.texts @ _backbone_catalog(dataset, refiner.backbone, settings, pids, progress).T, q.targets)
    by: dict[str, Any] = {}
    for key in ("change", "lang"):
        values = np.array([q.meta[key][t] for t in q.triplet])
        by[key] = {v: {**_figures(refined[values == v]), "n": int((values == v).sum())} for v in sorted(set(values))}
    return {**_figures(refined), "vector_only": _figures(_ranks(vector_only, q.targets)),
            "baselines": {"image_only": _figures(image_only), "text_only": _figures(text_only),
                          "image_with_text_attributes": _figures(image_attributes)},
            "text_attributes_read": round(sum(bool(w) for w in wanted) / len(wanted), 4),
            "n_triplets": len(set(q.triplet.tolist())), "n_queries": len(q.targets), "catalog": len(pids), "by": by,
            "model": pinned.label, "embedder": refiner.embedder, "data": str(data), "split": split,
            "triplets_without_photo": len(triplets["text"]) - len(set(q.triplet.tolist())),
            "change_counts": dict(Counter(triplets["change"]))}
