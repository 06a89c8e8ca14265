"""The ranker for real: features, metrics, and train/eval through the CLI on the tiny models' sessions."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from visearch.ranking.features import FEATURES, Candidate, CatalogStats, candidate_features
from visearch.ranking.ranker import mrr, ndcg_at


def test_ndcg_and_mrr():
    assert ndcg_at([3, 0, 0], [0.9, 0.5, 0.1]) == pytest.approx(1.0)
    assert ndcg_at([0, 0, 3], [0.9, 0.5, 0.1]) == pytest.approx(0.5)  # (2^3-1)/log2(4) over (2^3-1)/log2(2)
    assert ndcg_at([0, 0], [1, 2]) == 0.0
    assert mrr([0, 1, 0], [0.9, 0.5, 0.1]) == 0.5 and mrr([0, 0], [1, 2]) == 0.0


def test_features_compare_prices_within_the_category():
    stats = CatalogStats.of(["sofa", "sofa", "mug", "mug"], [30000, 50000, 300, 500])
    cands = [Candidate("a", "sofa", 20000.0, 4.5, 100), Candidate("b", "mug", 800.0, 3.0, 0), Candidate("c", None, None, None, None)]
    X = candidate_features(np.array([0.9, 0.7, 0.2]), np.array([0.8, 0.75, 0.1]), cands, stats, category="sofa",
                           articles=frozenset({"b"}))
    assert X.shape == (3, len(FEATURES))
    f = {name: X[:, i] for i, name in enumerate(FEATURES)}
    assert f["log_price_ratio"][0] < 0 < f["log_price_ratio"][1], "a cheap sofa, a dear mug"
    assert list(f["rank"]) == [0, 1, 2] and f["similarity_gap"][0] == 0.0
    assert list(f["category_agrees"]) == [1, 0, 0] and list(f["article_match"]) == [0, 1, 0]
    assert f["log_reviews"][2] == 0 and np.isfinite(X).all()
    assert (candidate_features(np.array([0.5]), np.array([0.5]), cands[:1], stats)[0, FEATURES.index("category_agrees")]
            == -1), "no detected category"
    assert CatalogStats.from_dict(stats.to_dict()) == stats


def test_who_shares_the_top_candidates_brand_is_marked_as_its_likely_variant():
    stats = CatalogStats.of(["bag"], [1000])
    cands = [Candidate("v", "bag", 1000.0, 4.0, 1, brand="Nord", material="leather"),
             Candidate("top", "bag", 1000.0, 4.0, 1, brand="Nord", material="leather"),
             Candidate("other", "bag", 1000.0, 4.0, 1, brand="Aura", material="leather"),
             Candidate("bare", "bag", 1000.0, 4.0, 1)]
    X = candidate_features(np.array([0.7, 0.9, 0.6, 0.5]), np.array([0.7, 0.9, 0.6, 0.5]), cands, stats)
    f = {name: X[:, i] for i, name in enumerate(FEATURES)}
    assert list(f["brand_agrees_top"]) == [1, 1, 0, -1] and list(f["material_agrees_top"]) == [1, 1, 1, -1]


def test_a_ranker_from_before_a_feature_existed_still_ranks(tmp_path):
    """Its saved feature list is a subset of today's: it reads those columns, and says so when one is unknown."""
    from visearch.errors import DatasetError
    from visearch.ranking.ranker import Ranker

    rng = np.random.default_rng(0)
    old = FEATURES[:10]
    X = rng.normal(size=(60, len(FEATURES))).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.float32)
    stats = CatalogStats.of(["bag"], [1000])
    ranker = Ranker.fit(X[:, :10], y, [10] * 6, stats, {"objective": "rank:ndcg", "max_depth": 2}, 5, features=old)
    loaded = Ranker.load(ranker.save(tmp_path / "old"))
    assert loaded.features == old
    assert np.allclose(loaded.score(X), ranker.booster.predict(__import__("xgboost").DMatrix(X[:, :10], feature_names=list(old))))
    with pytest.raises(DatasetError, match="retrain"):
        Ranker(ranker.booster, stats, (*old, "from_the_future"))


def test_train_and_eval_ranker_through_the_cli(tiny_models, tiny_synth, tmp_path, cli):
    root = tmp_path / "r"
    shutil.copytree(tiny_models / "data", root / "data", ignore=shutil.ignore_patterns("events.db*", "runs"))
    (root / "home").mkdir()
    r = cli(root, "train", "ranker", "--data", str(tiny_synth), "--recipe", "tiny", "--alias", "champion", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    r = cli(root, "eval", "ranker", "--data", str(tiny_synth), "--split", "train", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)
    assert set(report) >= {"ranker", "similarity", "n_queries"} and report["n_queries"] > 0
    for order in ("ranker", "similarity", "best_possible"):  # the last: by the shoppers' own model, a simulator's ceiling
        assert set(report[order]) == {"ndcg@10", "mrr"} and 0 <= report[order]["ndcg@10"] <= 1
    assert report["model"] == "visearch-ranker/1"
    card = json.loads(cli(root, "models", "show", "models:/visearch-ranker@champion", "--json").stdout)["card"]
    assert card["task"] == "ranker" and card["pretrained"] is False and "ndcg@10" in card["val_metrics"]["ranker"]
    r = cli(root, "eval", "ranker", "--data", str(tmp_path / "nope"), "--json")
    assert r.returncode != 0 and "nope" in r.stderr and "Traceback" not in r.stderr

    # the service's own event log: what the ranker saw of each shown product, and what shoppers did with it
    from visearch.events import Event, EventLog, ServedRequest

    rng = np.random.default_rng(0)
    log = EventLog(root / "data" / "served.db")
    events = []
    for r in range(80):
        rid, products = f"r{r:03d}", [f"p{r:03d}-{j}" for j in range(8)]
        X = rng.random((8, len(FEATURES))).astype(np.float32)  # similarity (column 0) unrelated to what shoppers want
        log.remember(ServedRequest(rid, f"u{r % 7}", "default", "control", tuple(products),
                                   {p: [*map(float, x), 0.0] for p, x in zip(products, X, strict=True)}))
        for j, p in enumerate(products):
            events.append(Event("impression", rid, p, j + 1, "control"))
            if X[j, FEATURES.index("rating")] > 0.7:  # shoppers click the well rated
                events.append(Event("click", rid, p, j + 1, "control"))
    log.append(events)
    log.close()
    r = cli(root, "train", "ranker", "--events", str(root / "data" / "served.db"), "--recipe", "tiny", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    card = json.loads(cli(root, "models", "show", "models:/visearch-ranker/2", "--json").stdout)["card"]
    assert card["data"]["path"].endswith("served.db") and "--events" in card["command"]
    assert card["serving_ranker"] == "visearch-ranker/1" and card["val_split"] == "test"
    held_out = card["val_metrics"]
    assert held_out["n_queries"] == 12  # the newest 15% of 80 requests
    assert held_out["ranker"]["ndcg@10"] > held_out["similarity"]["ndcg@10"] + 0.1
    for args in (["--data", str(tiny_synth), "--events", str(root / "data" / "served.db")], ["--events", str(root / "nope.db")]):
        r = cli(root, "train", "ranker", *args, "--recipe", "tiny", "--quiet")
        assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.strip(), r.stderr

    # search reorders its candidates with the registered ranker
    from visearch.config import Settings
    from visearch.ranking.apply import RankContext
    from visearch.searcher import Searcher

    settings = Settings(data_dir=root / "data")
    searcher = Searcher.from_settings(settings)
    assert searcher.ranker is not None and searcher.candidates == settings.ranking.candidates
    vectors = pq.read_table(next((root / "data" / "vectors").glob("*.parquet"))).column("vector")
    query = np.stack(vectors.to_numpy(zero_copy_only=False)[:2]).astype(np.float32)
    ranked = searcher.search(query, 5, contexts=[RankContext(category="nope"), RankContext()])
    for hits in ranked:
        assert len(hits) == 5 and all(h.features is not None and len(h.features) == len(FEATURES) for h in hits)
        assert [h.rank_score for h in hits] == sorted((h.rank_score for h in hits), reverse=True)
    plain = Searcher(settings.index)
    similarity = plain.search(query, 50)
    assert {h.product_id for h in ranked[0]} <= {h.product_id for h in similarity[0]}, "reordered, not replaced"
    searcher.close(), plain.close()

    # more catalogs' train-split sessions (here the same set again): learnt from, while the figures stay on --data
    r = cli(root, "train", "ranker", "--data", str(tiny_synth), "--also", str(tiny_synth), "--recipe", "tiny", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    shown = json.loads(cli(root, "models", "show", "models:/visearch-ranker/3", "--json").stdout)
    card, first = shown["card"], json.loads(cli(root, "models", "show", "models:/visearch-ranker/1", "--json").stdout)["card"]
    assert card["command"].endswith(f"--also {tiny_synth}") and "2 catalogs" in card["summary"]
    assert card["val_metrics"]["n_queries"] == first["val_metrics"]["n_queries"], "judged on --data's held-out sessions alone"
    r = cli(root, "train", "ranker", "--events", str(root / "data" / "served.db"), "--also", str(tiny_synth), "--quiet")
    assert r.returncode != 0 and "--also" in r.stderr and "Traceback" not in r.stderr
