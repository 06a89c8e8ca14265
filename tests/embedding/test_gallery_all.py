"""``visearch eval embeddings --gallery all``: the same held-out crops searched among every product of
every split (as a shopper searches the catalog), reported like the split gallery, for the head and both
baselines."""

from __future__ import annotations

import json

from PIL import Image

from visearch.catalog import read_catalog

METRICS = ("recall@1", "recall@5", "recall@10", "map@10", "precision", "f1")
MODEL = "models:/visearch-embedder@smoke"


def _eval(cli, root, data, gallery, report):
    r = cli(root, "eval", "embeddings", "--data", str(data), "--model", MODEL, "--gallery", gallery,
            "--report", str(report), "--json", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def _blocks(report):
    """(name, size, metrics) of the head and both baselines."""
    for name, block in (("head", report["head"]), ("frozen", report["baselines"]["frozen"]),
                        ("truncated", report["baselines"]["truncated"])):
        for size, m in block.items():
            yield name, size, m


def test_gallery_all_is_the_whole_catalog(trained, cli, tiny_synth, tmp_path):
    root, _ = trained
    split = _eval(cli, root, tiny_synth, "split", tmp_path / "split.json")
    whole = _eval(cli, root, tiny_synth, "all", tmp_path / "all.json")
    assert split["gallery"] == "split" and whole["gallery"] == "all"
    with_photos = [u for u in read_catalog(tiny_synth, columns=["image_uris"]).column("image_uris").to_pylist() if u]
    assert whole["n_products"] == len(with_photos) > split["n_products"] > 0
    assert whole["n_gallery_photos"] == sum(map(len, with_photos)) > split["n_gallery_photos"]
    # the queries are the same crops whichever gallery they are searched in
    assert whole["n_queries"] == split["n_queries"] and whole["n_query_products"] == split["n_query_products"]
    assert json.loads((tmp_path / "all.json").read_text()) == whole
    assert Image.open(tmp_path / "all.png").width > 0
    small = {(name, size): m for name, size, m in _blocks(split)}
    slack = 1 / whole["n_queries"] + 1e-9  # one query's worth: batched float sums may move a tie
    for name, size, m in _blocks(whole):
        assert all(0 <= m[k] <= 1 for k in METRICS), (name, size, m)
        # more products can only push the right one down
        assert m["recall@10"] <= small[(name, size)]["recall@10"] + slack, (name, size)


def test_bad_gallery_gives_one_line(trained, cli, tiny_synth):
    root, _ = trained
    r = cli(root, "eval", "embeddings", "--data", str(tiny_synth), "--model", MODEL, "--gallery", "everything", "--json")
    assert r.returncode == 1 and r.stdout == ""
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("visearch: error:")]
    assert len(errors) == 1 and "--gallery" in errors[0], r.stderr
