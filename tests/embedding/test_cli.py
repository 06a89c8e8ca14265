"""``visearch train backbone`` + ``visearch train head`` + ``visearch eval embeddings`` as a user
runs them (subprocesses, fresh HOME and data dir), the registered models loaded back by
reference, and bad inputs ending as one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from visearch.embedding.data import open_dataset
from visearch.embedding.embedder import Embedder
from visearch.registry import ModelStore, parse_ref

METRICS = {"recall@1", "recall@5", "recall@10", "map@10", "f1"}


def test_eval_embeddings_json_and_report(trained, cli, tiny_synth, tmp_path):
    root, _ = trained
    r = cli(root, "eval", "embeddings", "--data", str(tiny_synth), "--model", "models:/visearch-embedder@smoke",
                "--report", str(tmp_path / "emb.json"), "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    report = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert set(report["head"]) == {"512", "256", "128", "64"}
    for block in report["head"].values():
        assert METRICS <= set(block) and all(0 <= block[k] <= 1 for k in METRICS)
    assert set(report["baselines"]) == {"frozen", "truncated"}
    assert set(report["baselines"]["frozen"]) == {"512"} and report["baselines"]["frozen"]["512"]["dim"] == 64
    assert set(report["baselines"]["truncated"]) == {"512", "256", "128", "64"}
    assert METRICS <= set(report["baselines"]["truncated"]["64"])
    assert report["n_queries"] > 0 and report["n_products"] > 0
    assert "NOT pretrained SigLIP 2" in report["backbone_card"]
    assert json.loads((tmp_path / "emb.json").read_text()) == report
    assert Image.open(tmp_path / "emb.png").width > 0


def test_registered_versions_carry_sizes_and_backbone(trained, tiny_synth):
    root, settings = trained
    store = ModelStore(settings)
    version = store.client.get_model_version_by_alias("visearch-embedder", "smoke")
    assert version.tags["dims"] == "512,256,128,64" and version.tags["output_dim"] == "512"
    assert version.tags["backbone"].startswith("models:/visearch-backbone/")
    assert version.tags["baseline"].startswith("models:/visearch-embedder-baseline/")
    backbone = store.client.get_model_version_by_alias("visearch-backbone", "smoke")
    assert backbone.tags["pretrained_siglip2"] == "False" and "synthetic" in backbone.tags["trained_on"]
    # catalog photos only, like SigLIP 2: the shoppers' crops are left to the head
    assert backbone.tags["train_photos"] == str(len(open_dataset(tiny_synth).gallery_items("train")))
    run = store.client.get_run(version.run_id)
    assert {"recipe", "backbone", "dims", "pairs_kept"} <= set(run.data.params)
    # one metric-key scheme for every job (visearch.registry.recorder)
    assert "val/head/64/recall_at_10" in run.data.metrics and "clean/near_duplicates" in run.data.metrics
    curve = store.client.get_metric_history(version.run_id, "train/loss_mrl")
    assert len(curve) >= 2  # one point per epoch
    # the card says how to make it again and from which data
    assert version.tags["command"].startswith("visearch train head --data ") and "--recipe tiny" in version.tags["command"]
    card = json.loads(store.download(parse_ref("models:/visearch-embedder@smoke")).joinpath("card.json").read_text())
    assert len(card["data"]["manifest_sha256"]) == 64 and card["task"] == "embedder" and card["software"]["torch"]


def test_embedder_loads_back_by_reference(trained, tiny_synth):
    _, settings = trained
    emb = Embedder.from_ref("models:/visearch-embedder@smoke", settings)
    assert emb.dims == (512, 256, 128, 64) and emb.card["pretrained_siglip2"] is False
    photos = [Image.open(p).convert("RGB") for p in sorted((tiny_synth / "gallery").glob("*.jpg"))[:3]]
    full, short = emb.embed(photos), emb.embed(photos, dim=64)
    assert full.shape == (3, 512) and short.shape == (3, 64)
    assert np.allclose(np.linalg.norm(short, axis=1), 1, atol=1e-5)
    with pytest.raises(Exception, match="trained prefix sizes"):
        emb.embed(photos, dim=100)


def test_if_missing_reuses_the_registered_version(trained, cli, tiny_synth):
    root, _ = trained
    r = cli(root, "train", "backbone", "--data", str(tiny_synth), "--recipe", "tiny", "--alias", "smoke", "--if-missing")
    assert r.returncode == 0 and "reusing it" in r.stdout


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("train", "backbone", "--data", "{tmp}/absent", "--recipe", "tiny"), 1, "no such data set folder"),
        (("train", "head", "--data", "{tmp}", "--recipe", "tiny"), 1, "WB-Synth"),
        (("train", "backbone", "--data", "{tmp}", "--recipe", "huge"), 1, "unknown recipe 'huge'"),
        (("train", "head", "--data", "{tmp}", "--recipe", "huge"), 1, "unknown recipe 'huge'"),
        (("eval", "embeddings", "--data", "{tmp}/absent", "--json"), 1, "no such data set folder"),
        (("eval", "embeddings", "--data", "{data}", "--model", "models:/nothing@champion", "--json"), 1,
         "no such registered model"),
        (("eval", "embeddings", "--data", "{data}", "--split", "dev", "--json"), 1, "--split"),
        (("train", "head"), 2, "--data"),
    ],
)
def test_bad_inputs_give_one_line(args, code, needle, cli, tiny_synth, tmp_path):
    for d in ("home", "work"):
        (tmp_path / d).mkdir()
    r = cli(tmp_path, *(a.format(tmp=tmp_path, data=tiny_synth) for a in args), timeout=120)
    assert r.returncode == code, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("visearch: error:")]
    assert len(errors) == 1 and needle in errors[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
