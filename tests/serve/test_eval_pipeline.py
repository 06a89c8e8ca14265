"""``visearch eval pipeline`` measures the same thing in process and through the running service."""

from __future__ import annotations

import json


def test_eval_pipeline_over_http_equals_in_process(service, tiny_models, tiny_synth, cli):
    local = cli(tiny_models, "eval", "pipeline", "--data", str(tiny_synth), "--limit", "6", "--json", "--quiet")
    assert local.returncode == 0, local.stderr[-3000:]
    remote = cli(tiny_models, "eval", "pipeline", "--data", str(tiny_synth), "--limit", "6", "--json", "--quiet",
                 "--url", service.url)
    assert remote.returncode == 0, remote.stderr[-3000:]
    a, b = json.loads(local.stdout), json.loads(remote.stdout)
    assert a["photos"] == b["photos"] == 6 and b["source"] == service.url
    for kind in ("auto", "tapped"):
        assert a[kind]["n"] == b[kind]["n"] > 0
        for key in ("top1", "top10", "article_hits", "category_share@10"):
            assert a[kind][key] == b[kind][key], (kind, key, a[kind], b[kind])


def test_calibration_is_kept_with_the_embedder_version(tiny_models, tiny_synth, cli):
    r = cli(tiny_models, "calibrate", "--data", str(tiny_synth), "--split", "val", "--target", "0.5", "--json", "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout)
    assert result["embedder"].startswith("visearch-embedder/") and result["n"] > 0
    if result["threshold"] is not None:  # tiny models may be right too rarely to reach even 0.5
        from visearch.config import Settings
        from visearch.registry import ModelStore

        name, version = result["embedder"].split("/")
        tags = ModelStore(Settings(data_dir=tiny_models / "data")).tags(name, version)
        assert float(tags["match_threshold"]) == result["threshold"]
        again = cli(tiny_models, "calibrate", "--data", str(tiny_synth), "--if-missing", "--quiet")
        assert again.returncode == 0 and "calibrated already" in again.stdout
    bad = cli(tiny_models, "calibrate", "--data", str(tiny_models), "--quiet")
    assert bad.returncode == 1 and "scenes.parquet" in bad.stderr
