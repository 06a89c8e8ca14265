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

import shlex
import time
from collections.abc import Sequence
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
from visearch.registry.card import DataProvenance, ModelCard, data_provenance, train_command
from visearch.registry.recorder import ModelRecorder
from visearch.synth.sessions import ShopItem, expected_gain

__all__ = ["RankerRecipe", "RECIPES", "MODEL_NAME", "SessionGroups", "session_groups", "log_groups", "train_ranker",
           "eval_ranker"]

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
    """One split's query groups: feature rows (contiguous per session), labels, group sizes, and for simulated
    sessions each row's expected gain under the shoppers' own model (the best possible order's key)."""

    X: np.ndarray
    y: np.ndarray
    groups: list[int]
    sessions: list[str]
    best: np.ndarray | None = None

    @classmethod
    def concat(cls, parts: Sequence[SessionGroups]) -> SessionGroups:
        """Several sets' groups as one (a ranker learning from several catalogs)."""
        best = None if any(p.best is None for p in parts) else np.concatenate([p.best for p in parts])  # type: ignore[misc]
        return cls(np.concatenate([p.X for p in parts]), np.concatenate([p.y for p in parts]),
                   [n for p in parts for n in p.groups], [s for p in parts for s in p.sessions], best)

    def spans(self) -> list[slice]:
        out, at = [], 0
        for n in self.groups:
            out.append(slice(at, at + n))
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


def session_groups(data: Path, settings: Settings, progress: bool = True,
                   split: str | None = None) -> tuple[dict[str, SessionGroups], CatalogStats, dict[str, Any]]:
    """Every logged session of ``data`` (or of one ``split``) as a query group per split, the catalog
    statistics, and counts."""
    from visearch.embedding.embedder import Embedder
    from visearch.query import crop
    from visearch.vision.images import load_image

    events_path = Path(data) / "events.parquet"
    if not events_path.is_file():
        raise DatasetError(f"{data}: no events.parquet (logged sessions); is it a WB-Synth data set?")
    ev = pq.read_table(events_path).to_pydict()
    dataset = open_dataset(data)
    p = dataset.products
    shop = ShopItem.by_id(p)
    info = {pid: Candidate(pid, str(p["category"][i]), float(p["price"][i]), float(p["rating"][i]), int(p["reviews_count"][i]),
                           brand=_column(p, "brand", i), material=_column(p, "material", i))
            for i, pid in enumerate(p["product_id"])}
    stats = CatalogStats.of([c.category or "" for c in info.values()], [c.price or 0.0 for c in info.values()])
    vectors, embedder_label = catalog_vectors(data, settings, settings.models.embedder, progress)
    wanted = {q for q, sp in zip(ev["query_product_id"], ev["split"], strict=True) if split in (None, sp)}
    crops = _query_crops(dataset, wanted)
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
    rows: dict[str, list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]] = {"train": [], "val": [], "test": []}
    skipped = 0
    for sid, idx in by_session.items():
        q = ev["query_product_id"][idx[0]]
        if split not in (None, ev["split"][idx[0]]):
            continue
        shown = [ev["product_id"][i] for i in idx]
        if q not in qvec or any(s not in vectors for s in shown):
            skipped += 1
            continue
        cand = np.stack([vectors[s] for s in shown])
        X = candidate_features(cand @ qvec[q], online_similarity(qvec[q], cand, online), [info[s] for s in shown], stats,
                               category=info[q].category)
        y = np.array([int(ev["clicked"][i]) + int(ev["added_to_cart"][i]) + int(ev["ordered"][i]) for i in idx], np.float32)
        best = np.array([expected_gain(int(ev["relevance"][i]), shop[s], len(idx)) for i, s in zip(idx, shown, strict=True)])
        rows[ev["split"][idx[0]]].append((sid, X, y, best))
    out = {}
    for split, groups in rows.items():
        if groups:
            out[split] = SessionGroups(np.concatenate([g[1] for g in groups]), np.concatenate([g[2] for g in groups]),
                                       [len(g[2]) for g in groups], [g[0] for g in groups],
                                       np.concatenate([g[3] for g in groups]))
    counts = {"sessions": len(by_session), "skipped_sessions": skipped, "embedder": embedder_label, "online_dim": online,
              **{f"{s}_sessions": len(g.groups) for s, g in out.items()}}
    if "train" not in out:
        raise DatasetError(f"{data}: no usable train-split sessions to learn a ranker from")
    return out, stats, counts


#: shares of the service's own log, oldest first: a ranker learns from earlier traffic and is judged on later
LOG_SPLITS = (("train", 0.7), ("val", 0.15), ("test", 0.15))
_ACTS = frozenset({"click", "add_to_cart", "order"})  # each adds one to a shown product's label


def log_groups(events: Path, settings: Settings) -> tuple[dict[str, SessionGroups], CatalogStats, dict[str, Any]]:
    """The service's own event log as query groups: each answered request a ranker ordered (what it saw of each
    product was kept) and whose results were shown (impressions); the label is what the shopper did with each
    shown product (0 shown, 1 clicked, 2 carted, 3 ordered). Split by time (:data:`LOG_SPLITS`). The catalog
    statistics are the serving ranker's: the logged features were computed with them."""
    from visearch.events import EventLog
    from visearch.ranking.features import FEATURES
    from visearch.ranking.ranker import ranker_ref

    path = Path(events)
    if not path.is_file():
        raise DatasetError(f"{path}: no event log there (the service writes <data_dir>/events.db)")
    ref = ranker_ref(settings)
    if ref is None:
        raise DatasetError("the log's features were computed by a registered ranker, and none is: train one on a "
                           "WB-Synth set first (visearch train ranker --data DIR --alias champion)")
    stats = Ranker.from_ref(ref, settings).stats
    log = EventLog(path)
    try:
        shown: dict[str, dict[str, int]] = {}  # request -> product -> label
        after = 0
        while rows := list(log.read(after=after, limit=50_000)):
            for r in rows:
                if r["type"] == "impression":
                    shown.setdefault(r["request_id"], {}).setdefault(r["product_id"], 0)
            for r in rows:
                if r["type"] in _ACTS and r["product_id"] in shown.get(r["request_id"], {}):
                    shown[r["request_id"]][r["product_id"]] += 1
            after = rows[-1]["seq"]
        requests = [req for req, _ in log.ranked() if req.request_id in shown]
    finally:
        log.close()
    width = len(FEATURES)
    groups, stale = [], 0
    for req in requests:
        labels = {p: min(y, 3) for p, y in shown[req.request_id].items() if p in req.inputs}
        if len(labels) < 2:
            continue
        if any(len(req.inputs[p]) != width + 1 for p in labels):  # logged by a version with other features
            stale += 1
            continue
        X = np.array([req.inputs[p][:width] for p in labels], np.float32)
        groups.append((req.request_id, X, np.array(list(labels.values()), np.float32)))
    if len(groups) < 10:
        raise DatasetError(f"{path}: {len(groups)} ranked requests with at least two impressions; a ranker needs more "
                           "traffic (let shoppers use the service, or drive it: visearch simulate)")
    out, start = {}, 0
    for i, (split, share) in enumerate(LOG_SPLITS):
        end = len(groups) if i == len(LOG_SPLITS) - 1 else start + int(round(share * len(groups)))
        part = groups[start:end]
        start = end
        if part:
            out[split] = SessionGroups(np.concatenate([g[1] for g in part]), np.concatenate([g[2] for g in part]),
                                       [len(g[2]) for g in part], [g[0] for g in part])
    counts = {"requests": len(groups), "requests_with_other_features": stale, "serving_ranker": pin_model(ref, settings).label,
              **{f"{s}_requests": len(g.groups) for s, g in out.items()}}
    return out, stats, counts


def figures(ranker: Ranker, groups: SessionGroups, k: int = 10) -> dict[str, Any]:
    """NDCG@k and MRR of the ranker's order and of similarity order on the same query groups; on simulated
    sessions also of the best possible order (by expected gain under the shoppers' own model), the ceiling
    any ranker is measured against: labels are single noisy draws, so even that order is far from 1.0."""
    orders: dict[str, dict[str, list[float]]] = {name: {"ndcg@10": [], "mrr": []} for name in ("ranker", "similarity", "best_possible")}
    for span in groups.spans():
        X, y = groups.X[span], groups.y[span]
        keys = {"ranker": ranker.score(X), "similarity": X[:, 0]}
        if groups.best is not None:
            keys["best_possible"] = groups.best[span]
        for name, key in keys.items():
            orders[name]["ndcg@10"].append(ndcg_at(y, key, k))
            orders[name]["mrr"].append(mrr(y, key))
    result: dict[str, Any] = {name: {m: round(float(np.mean(v)), 4) for m, v in d.items()} for name, d in orders.items() if d["mrr"]}
    result["n_queries"] = len(groups.groups)
    base = result["similarity"]["ndcg@10"]
    result["ndcg_gain"] = round(result["ranker"]["ndcg@10"] / base - 1, 4) if base else None
    if "best_possible" in result and base:
        result["best_possible_gain"] = round(result["best_possible"]["ndcg@10"] / base - 1, 4)
    return result


def train_ranker(data: Path | None, settings: Settings, recipe: str = "quick", alias: str | None = None,
                 progress: bool = True, events: Path | None = None, more: Sequence[Path] = ()) -> ModelCard:
    """Train ``recipe`` on the sessions of a WB-Synth set (``data``, and the train-split sessions of the ``more``
    sets, each set's features against its own catalog) or on the service's own event log (``events``);
    registers a version whose card gives its held-out figures on ``data`` or the log."""
    if (data is None) == (events is None):
        raise DatasetError("train the ranker on a WB-Synth set (--data DIR) or on the service's event log (--events FILE)")
    if more and events is not None:
        raise DatasetError("--also adds WB-Synth sets' sessions to --data; the event log is learnt from alone")
    rec = pick_recipe(recipe, RECIPES)
    started = time.time()
    source = Path(events if events is not None else data)  # type: ignore[arg-type]
    if events is not None:
        splits, stats, counts = log_groups(source, settings)
        provenance = DataProvenance(path=str(source))
        command = shlex.join(["visearch", "train", "ranker", "--events", str(source), "--recipe", rec.name])
        trained_on = f"the service's own event log ({counts['requests']} ranked requests with impressions)"
    else:
        splits, stats, counts = session_groups(source, settings, progress)
        provenance = data_provenance(source)
        command = train_command("ranker", source, rec.name, also=[str(d) for d in more] or None)
        trained_on = "WB-Synth's simulated sessions (synthetic data)"
        if more:
            extra = [session_groups(Path(d), settings, progress, split="train")[0]["train"] for d in more]
            splits["train"] = SessionGroups.concat([splits["train"], *extra])
            counts["also"] = ",".join(str(Path(d).resolve()) for d in more)
            counts["also_train_sessions"] = sum(len(g.groups) for g in extra)
            trained_on += f" of {1 + len(more)} catalogs"
    train, val = splits["train"], splits.get("val")
    store = ModelStore(settings)
    params = {"recipe": rec.name, **{k: v for k, v in asdict(rec).items() if k != "name"},
              ("events" if events is not None else "data"): str(source.resolve()), **counts}
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
                     f"reviews, trained on {trained_on}; recipe '{rec.name}'"),
            data=provenance, command=command,
            val_split="test" if "test" in splits else "val", val_metrics=results,
            train_seconds=round(time.time() - started, 1), note=rec.note, features=list(ranker.features),
            **{key: counts[key] for key in ("embedder", "online_dim", "serving_ranker") if key in counts},
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
