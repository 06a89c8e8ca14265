"""The online re-ranker: clicks move the clicked products up; restarts keep the learning; unhealthy
weights leave the ranker's order alone."""

from __future__ import annotations

import numpy as np

from visearch.config import Settings
from visearch.ranking.features import FEATURES
from visearch.ranking.online import INPUTS, OnlineReranker


def candidates(rng, n=10):
    X = rng.normal(0, 1, (n, len(FEATURES))).astype(np.float32)
    X[:, FEATURES.index("rating")] = rng.uniform(3, 5, n)
    return X


def stream(rng, rows, liked_feature="rating"):
    """Shoppers who click the best-rated of what they are shown, whatever the ranker thought."""
    seq = 0
    for _ in range(rows):
        X = candidates(rng)
        base = rng.normal(0, 1, len(X))
        best = int(np.argmax(X[:, FEATURES.index(liked_feature)]))
        for i in range(len(X)):
            seq += 1
            yield seq, "treatment", np.append(X[i], base[i]), i == best


def test_clicks_move_the_clicked_products_up(tmp_path):
    settings = Settings(data_dir=tmp_path).ranking
    online = OnlineReranker(settings)
    rng = np.random.default_rng(0)
    X, base = candidates(rng), np.linspace(1, 0, 10)  # the ranker's order: 0, 1, ..., 9
    col = FEATURES.index("rating")
    X[:, col] = np.sort(X[:, col])  # the best-rated last in the ranker's order: it can only move up
    before, applied = online.scores("treatment", X, base)
    assert not applied and np.array_equal(before, base), "no learning yet: the ranker's order"
    assert online.consume(stream(rng, 300)) == 3000
    after, applied = online.scores("treatment", X, base)
    rating = X[:, FEATURES.index("rating")]
    best = int(np.argmax(rating))
    assert applied and np.argsort(-after).tolist().index(best) < np.argsort(-before).tolist().index(best)
    top3 = np.argsort(-after)[:3]
    assert (rating[top3] >= np.sort(rating)[-4]).all(), "the kind of product shoppers click comes first"
    other, applied = online.scores("control", X, base)
    assert not applied and np.array_equal(other, base), "each variant learns apart"


def test_a_restart_keeps_weights_and_cursor(tmp_path):
    settings = Settings(data_dir=tmp_path).ranking
    rng = np.random.default_rng(1)
    rows = list(stream(rng, 50))
    first = OnlineReranker(settings)
    first.consume(rows[:300], checkpoint_every=100)
    again = OnlineReranker(settings)  # as after a restart
    assert again.cursor == 300 and np.array_equal(again.models["treatment"].w, first.models["treatment"].w)
    assert again.consume(rows) == len(rows) - 300, "rows before the cursor are not learnt twice"
    whole = OnlineReranker(Settings(data_dir=tmp_path / "one").ranking)
    whole.consume(rows)
    assert np.allclose(whole.models["treatment"].w, again.models["treatment"].w), "a restart changes nothing learnt"


def test_unhealthy_weights_fall_back_to_the_ranker(tmp_path):
    settings = Settings(data_dir=tmp_path).ranking
    online = OnlineReranker(settings)
    rng = np.random.default_rng(2)
    online.consume(stream(rng, 10))
    X, base = candidates(rng), np.linspace(1, 0, 10)
    assert online.scores("treatment", X, base)[1]
    online.models["treatment"].w[0] = np.nan
    scores, applied = online.scores("treatment", X, base)
    assert not applied and np.array_equal(scores, base)
    online.models["treatment"].w[:] = 100.0
    assert not online.scores("treatment", X, base)[1], "weights outside the ball are unhealthy too"


def test_steps_are_bounded(tmp_path):
    settings = Settings(data_dir=tmp_path).ranking
    online = OnlineReranker(settings)
    x = np.full(len(INPUTS), 1e6)  # a wild input cannot throw the weights far
    online.learn("v", x, True)
    assert np.linalg.norm(online.models["v"].w) <= settings.online_learning_rate * settings.online_max_gradient + 1e-9


def test_the_learner_reads_the_event_log_once(tmp_path):
    from visearch.events import Event, EventLog, ServedRequest

    settings = Settings(data_dir=tmp_path)
    log = EventLog(tmp_path / "events.db")
    rng = np.random.default_rng(3)
    X = candidates(rng)
    inputs = {f"p{i}": [*map(float, X[i]), 0.0] for i in range(10)}
    log.remember(ServedRequest("r1", "u1", "exp", "treatment", tuple(inputs), inputs))
    log.remember(ServedRequest("r2", "u2", "exp", "control", ("p0",)))  # served without a ranker: nothing to learn
    log.append([Event("impression", "r1", p) for p in inputs] + [Event("click", "r1", "p3"), Event("impression", "r2", "p0"),
                                                                  Event("order", "r1", "p3", value=5.0)])
    online = OnlineReranker(settings.ranking)
    assert online.learn_from_log(log) == 11 and online.models["treatment"].steps == 11 and "control" not in online.models
    assert online.cursor == log.count()
    assert online.learn_from_log(log) == 0, "read once"
    assert OnlineReranker(settings.ranking).cursor == online.cursor, "the cursor is checkpointed with the weights"


def test_one_learner_per_checkpoint(tmp_path):
    from serve_app.service import OnlineLearner
    from visearch.events import EventLog

    settings = Settings(data_dir=tmp_path)
    log = EventLog(tmp_path / "events.db")
    first = OnlineLearner.start(settings, log)
    assert first is not None and OnlineLearner.start(settings, log) is None, "another replica learns already"
    first.stop.set()
    assert OnlineLearner.start(Settings(data_dir=tmp_path / "off", ranking={"online_weight": 0}), log) is None
