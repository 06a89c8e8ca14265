"""Train the ranker on logged sessions and register it as ``visearch-ranker``; evaluate any version.

WB-Synth's sessions log what shoppers were shown for a query product, and what they clicked,
put in the cart and ordered. Each session becomes one query group: the query is a crop of the
query product from a shopper photo (true box) embedded by the serving embedder, the candidates
are the products shown, their features come from :func:`~visearch.ranking.features.candidate_features`
(similarity to the query as search computes it, price against the category, rating, reviews...),
and the label is what the shopper did (0 shown, 1 clicked, 2 carted, 3 ordered). Sessions of
train-split queries train, val-split ones pick the number of rounds, test-split ones are held out.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from training.recipes import pick_recipe
from training.vectorize import catalog_vectors
from visearch.config import Settings
from visearch.embedding.data import open_dataset
from visearch.errors import DatasetError
from visearch.progress import track
from visearch.ranking.features import Candidate, CatalogStats, candidate_features, online_similarity
from visearch.ranking.ranker import Ranker, mrr, ndcg_at
from visearch.registry import ModelStore, pin_model
from visearch.registry.card import ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder

__all__ = ["RankerRecipe", "RECIPES", "MODEL_NAME", "SessionGroups", "session_groups", "train_ranker", "eval_ranker"]

MODEL_NAME = "visearch-ranker"


@dataclass(frozen=True)
class RankerRecipe:
    name: str
    rounds: int
    max_depth: int = 4
    eta: float = 0.1
    min_child_weight: float = 1.0
    subsample: float = 0.9
    note: str = ""

    def params(self, seed: int) -> dict[str, Any]:
        return {"objective": "rank:ndcg", "eval_metric": ["ndcg@10"], "lambdarank_pair_method": "topk",
                "max_depth": self.max_depth, "eta": self.eta, "min_child_weight": self.min_child_weight,
                "subsample": self.subsample, "tree_method": "hist", "seed": seed, "nthread": 0}


RECIPES: dict[str, RankerRecipe] = {
    "quick": RankerRecipe("quick", rounds=150, note="seconds on 2 cores"),
    "full": RankerRecipe("full", rounds=400, max_depth=5, eta=0.05, note="for the default bundle"),
    "tiny": RankerRecipe("tiny", rounds=5, max_depth=2, note="smoke test only"),
}


@dataclass
class SessionGroups:
    """One split's query groups: feature rows (contiguous per session), labels, group sizes."""

    X: np.ndarray
    y: np.ndarray
    groups: list[int]
    sessions: list[str]

    def each(self) -> list[tuple[np.ndarray, np.ndarray]]:
        out, at = [], 0
        for n in self.groups:
            out.append((self.X[at : at + n], self.y[at : at + n]))
            at += n
        return out


def _query_crops(dataset: Any, products: set[str]) -> dict[str, tuple[str, tuple[int, int, int, int]]]:
    """One shopper-photo crop (image path, true box) per product, the best visible one."""
    sc = dataset.scenes
    best: dict[str, tuple[float, str, tuple[int, int, int, int]]] = {}
    kinds = sc.get("kind") or ["shopper"] * len(sc["image"])
    for i, pid in enumerate(sc["product_id"]):
        if pid not in products or kinds[i] != "shopper":
            continue
        vis = float(sc["visible"][i]) if "visible" in sc else 1.0
        if pid not in best or vis > best[pid][0]:
            best[pid] = (vis, sc["image"][i], (int(sc["x1"][i]), int(sc["y1"][i]), int(sc["x2"][i]), int(sc["y2"][i])))
    return {p: (img, box) for p, (_, img, box) in best.items()}


def _column(columns: dict[str, list[Any]], name: str, row: int) -> str | None:
    value = columns[name][row] if name in columns else None
    return None if value is None else str(value)


def session_groups(data: Path, settings: Settings, progress: bool = True) -> tuple[dict[str, SessionGroups], CatalogStats, dict[str, Any]]:
    """Every logged session of ``data`` as a query group per split, the catalog statistics, and counts."""
    from visearch.embedding.embedder import Embedder
    from visearch.query import crop
    from visearch.vision.images import load_image

    events_path = Path(data) / "events.parquet"
    if not events_path.is_file():
        raise DatasetError(f"{data}: no events.parquet (logged sessions); is it a WB-Synth data set?")
    ev = pq.read_table(events_path).to_pydict()
    dataset = open_dataset(data)
    p = dataset.products
    info = {pid: Candidate(pid, str(p["category"][i]), float(p["price"][i]), float(p["rating"][i]), int(p["reviews_count"][i]),
                           brand=_column(p, "brand", i), material=_column(p, "material", i))
            for i, pid in enumerate(p["product_id"])}
    stats = CatalogStats.of([c.category or "" for c in info.values()], [c.price or 0.0 for c in info.values()])
    vectors, embedder_label = catalog_vectors(data, settings, settings.models.embedder, progress)
    crops = _query_crops(dataset, set(ev["query_product_id"]))
    embedder = Embedder.from_ref(settings.models.embedder, settings)
    queries = sorted(crops)
    qvec: dict[str, np.ndarray] = {}
    batch = settings.embedding.batch_size
    for start in track(range(0, len(queries), batch), (len(queries) + batch - 1) // batch, "embedding query crops", progress):
        part = queries[start : start + batch]
        images = [crop(load_image(dataset.root / crops[q][0]), crops[q][1]) for q in part]
        for q, v in zip(part, embedder.embed(images), strict=True):
            qvec[q] = v
    online = settings.index.online_dim
    by_session: dict[str, list[int]] = {}
    for i, s in enumerate(ev["session_id"]):
        by_session.setdefault(s, []).append(i)
    rows: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {"train": [], "val": [], "test": []}
    skipped = 0
    for sid, idx in by_session.items():
        q = ev["query_product_id"][idx[0]]
        shown = [ev["product_id"][i] for i in idx]
        if q not in qvec or any(s not in vectors for s in shown):
            skipped += 1
            continue
        cand = np.stack([vectors[s] for s in shown])
        X = candidate_features(cand @ qvec[q], online_similarity(qvec[q], cand, online), [info[s] for s in shown], stats,
                               category=info[q].category)
        y = np.array([int(ev["clicked"][i]) + int(ev["added_to_cart"][i]) + int(ev["ordered"][i]) for i in idx], np.float32)
        rows[ev["split"][idx[0]]].append((sid, X, y))
    out = {}
    for split, groups in rows.items():
        if groups:
            out[split] = SessionGroups(np.concatenate([g[1] for g in groups]), np.concatenate([g[2] for g in groups]),
                                       [len(g[2]) for g in groups], [g[0] for g in groups])
    counts = {"sessions": len(by_session), "skipped_sessions": skipped, "embedder": embedder_label, "online_dim": online,
              **{f"{s}_sessions": len(g.groups) for s, g in out.items()}}
    if "train" not in out:
        raise DatasetError(f"{data}: no usable train-split sessions to learn a ranker from")
    return out, stats, counts


def figures(ranker: Ranker, groups: SessionGroups, k: int = 10) -> dict[str, Any]:
    """NDCG@k and MRR of the ranker's order and of similarity order on the same query groups."""
    ours = {"ndcg@10": [], "mrr": []}
    sim = {"ndcg@10": [], "mrr": []}
    for X, y in groups.each():
        s = ranker.score(X)
        ours["ndcg@10"].append(ndcg_at(y, s, k))
        ours["mrr"].append(mrr(y, s))
        sim["ndcg@10"].append(ndcg_at(y, X[:, 0], k))
        sim["mrr"].append(mrr(y, X[:, 0]))
    mean = lambda d: {m: round(float(np.mean(v)), 4) for m, v in d.items()}  # noqa: E731
    result = {"ranker": mean(ours), "similarity": mean(sim), "n_queries": len(groups.groups)}
    base = result["similarity"]["ndcg@10"]
    result["ndcg_gain"] = round(result["ranker"]["ndcg@10"] / base - 1, 4) if base else None
    return result


def train_ranker(data: Path, settings: Settings, recipe: str = "quick", alias: str | None = None,
                 progress: bool = True) -> ModelCard:
    """Train ``recipe`` on the sessions of ``data``; registers a version whose card gives its test figures."""
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    splits, stats, counts = session_groups(data, settings, progress)
    train, val = splits["train"], splits.get("val")
    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k: v for k, v in asdict(rec).items() if k != "name"}, "data": str(Path(data).resolve()),
              **counts}
    with ModelRecorder(store, "ranker", f"ranker-{rec.name}", params, tags={"recipe": rec.name}) as recorder:
        every = max(1, rec.rounds // 50)

        def on_round(n: int, metrics: dict[str, float]) -> None:
            if n % every == 0 or n == rec.rounds:
                recorder.curve(metrics, n, prefix="boost")

        eval_set = None if val is None else (val.X, val.y, val.groups)
        ranker = Ranker.fit(train.X, train.y, train.groups, stats, rec.params(settings.seed), rec.rounds, eval_set, on_round)
        held_out = splits.get("test") or val or train
        results = figures(ranker, held_out)
        folder = ranker.save(settings.data_dir / "runs" / "ranker" / f"{recorder.run_id}-{rec.name}")
        card = ModelCard(
            name=MODEL_NAME, task="ranker", recipe=rec.name, arch="xgboost rank:ndcg (LambdaMART)",
            summary=(f"XGBoost learning-to-rank over search candidates' similarity, price against the category, rating and "
                     f"reviews, trained on WB-Synth's simulated sessions (synthetic data); recipe '{rec.name}'"),
            data=data_provenance(data), command=train_command("ranker", data, rec.name),
            val_split="test" if "test" in splits else "val", val_metrics=results,
            train_seconds=round(time.time() - started, 1), note=rec.note, embedder=counts["embedder"],
            online_dim=counts["online_dim"], features=list(ranker.features),
        )
        return recorder.register(folder, card, alias=alias)


def eval_ranker(data: Path, settings: Settings, ref: str, split: str = "test", progress: bool = True) -> dict[str, Any]:
    """The ranker at ``ref`` against similarity order on ``split``'s sessions of ``data`` (any WB-Synth set)."""
    from visearch.registry import resolve_model

    ranker = Ranker.load(resolve_model(ref, settings))
    splits, _, counts = session_groups(data, settings, progress)
    if split not in splits:
        raise DatasetError(f"{data}: no {split}-split sessions to evaluate on (has {sorted(splits)})")
    return {**figures(ranker, splits[split]), "model": pin_model(ref, settings).label, "data": str(data), "split": split,
            "embedder": counts["embedder"]}
