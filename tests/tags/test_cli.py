"""``visearch train tags|refiner`` and ``visearch eval tags|refiner`` on the tiny models (trained by tests/conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def test_eval_tags_prints_precision_for_each_way(tiny_models: Path, cli) -> None:
    r = cli(tiny_models, "eval", "tags", "--data", str(tiny_models / "tiny"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert 0.0 <= out["precision@5"] <= 1.0 and out["model"].startswith("visearch-tagger/")
    for way in ("projection", "neighbours", "fused"):
        assert set(out[way]) >= {"precision@5", "precision@1", "top1_per_facet"}
    assert out["precision@5"] == out["fused"]["precision@5"]
    assert out["generated"]["text_only_recovery"]["category"] > 0.5


def test_tag_training_compares_both_tricks_side_by_side(tiny_models: Path) -> None:
    runs = list((tiny_models / "data" / "runs" / "tagger").glob("*/tricks.json"))
    assert runs, "train tags writes tricks.json beside the weights"
    tricks = json.loads(runs[0].read_text())
    assert set(tricks["arms"]) == {"closed_form-orthogonal", "sgd-orthogonal", "closed_form-default", "sgd-default"}
    for name in ("closed_form_vs_sgd", "orthogonal_vs_default"):
        c = tricks["comparisons"][name]
        assert {"steps", "seconds", "final_val_loss", "val_precision@5"} <= set(c["trick"]) and c["target_val_loss"] > 0
    assert (runs[0].parent / "tricks.png").stat().st_size > 1000


def test_eval_refiner_prints_the_issue_keys(tiny_models: Path, cli) -> None:
    r = cli(tiny_models, "eval", "refiner", "--data", str(tiny_models / "tiny"), "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert {"top10", "top1", "baselines", "n_triplets"} <= set(out)
    assert set(out["baselines"]) == {"image_only", "text_only", "image_with_text_attributes"} and out["n_triplets"] > 0
    assert all(0.0 <= out["baselines"][b]["top10"] <= 1.0 for b in out["baselines"])
    # the products with the text's attributes first (a tiny set teaches few words): no worse than the vector alone
    assert out["text_attributes_read"] > 0 and out["top10"] >= out["vector_only"]["top10"]


def test_the_refiner_reads_the_attributes_a_text_names(tiny_models: Path) -> None:
    """Its vocabulary was learned from the tiny set's titles and train triplets, and travels with the version (a tiny set
    teaches few Russian words: the English value names are always known)."""
    from visearch.config import Settings
    from visearch.embedding.refiner import VOCABULARY_FILE, Refiner
    from visearch.registry import resolve_model
    from visearch.tags.vocabulary import Tag

    settings = Settings(data_dir=tiny_models / "data")
    refiner = Refiner.from_ref("models:/visearch-refiner@champion", settings)
    assert (resolve_model("models:/visearch-refiner@champion", settings) / VOCABULARY_FILE).is_file()
    assert refiner.wanted("Same but RED!") == [Tag("red", "colour")]
    assert refiner.wanted("the same in red or blue, stripes") == [Tag("red", "colour"), Tag("blue", "colour"),
                                                                   Tag("stripes", "pattern")]
    assert refiner.wanted("something nicer") == [] and refiner.wanted("") == []
    found = refiner.search_for(np.eye(1, refiner.head.config["image_dim"], dtype=np.float32), ["same but red"])
    assert found.vectors.shape == (1, refiner.head.config["image_dim"]) and found.wanted == [[Tag("red", "colour")]]


def test_eval_of_a_model_that_does_not_exist_is_one_line(tiny_models: Path, cli) -> None:
    r = cli(tiny_models, "eval", "refiner", "--data", str(tiny_models / "tiny"), "--model", "models:/visearch-refiner/99")
    assert r.returncode != 0 and r.stderr.strip().count("\n") == 0 and "visearch: error:" in r.stderr


def test_eval_refiner_through_the_whole_query(tiny_models: Path, cli) -> None:
    r = cli(tiny_models, "eval", "refiner", "--data", str(tiny_models / "tiny"), "--through-search", "--limit", "3",
            "--json", env={"VISEARCH_INDEX__PATH": str(tiny_models / "data" / "index")})
    assert r.returncode == 0, r.stderr[-2000:]
    through = json.loads(r.stdout)["through_search"]
    assert 1 <= through["n_triplets"] <= 3 and through["source"] == "in process"
    assert {"top1", "top10", "image_only", "anchor_detected"} <= set(through)
    assert 0.0 <= through["image_only"]["top10"] <= 1.0


def test_eval_tags_through_the_whole_query(tiny_models: Path, cli) -> None:
    r = cli(tiny_models, "eval", "tags", "--data", str(tiny_models / "tiny"), "--through-search", "--limit", "4",
            "--json", env={"VISEARCH_INDEX__PATH": str(tiny_models / "data" / "index")})
    assert r.returncode == 0, r.stderr[-2000:]
    through = json.loads(r.stdout)["through_search"]
    assert through["all"]["tapped"]["answered"] == 1.0 and through["all"]["tapped"]["n"] >= 4
    assert 0.0 <= through["precision@5"] <= 1.0 and through["source"] == "in process"
