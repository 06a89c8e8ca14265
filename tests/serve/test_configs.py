"""The Serve configs are valid for Ray and for our settings; the graph takes its resources from the settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["local.yaml", "gpu.yaml"])
def test_configs_are_valid_serve_configs(name):
    from ray.serve.schema import ServeDeploySchema

    from serve_app.app import app_settings

    config = yaml.safe_load((ROOT / "deployments" / name).read_text())
    ServeDeploySchema.model_validate(config) if hasattr(ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(config)
    (app,) = config["applications"]
    assert app["import_path"] == "serve_app.app:build_app"
    settings = app_settings(app["args"])
    for dep in ("ingress", "detector", "ocr", "embedder", "search"):
        cfg = getattr(settings.serving, dep)
        assert 1 <= cfg.max_replicas and cfg.min_replicas <= cfg.max_replicas
    if name == "gpu.yaml":
        assert settings.serving.detector.num_gpus > 0 and settings.serving.embedder.num_gpus > 0
        assert settings.embedding.device == "cuda" and settings.vision.device == "cuda"
    else:
        assert all(getattr(settings.serving, d).num_gpus == 0 for d in ("detector", "embedder"))


def test_deployments_take_replicas_and_resources_from_settings():
    from serve_app.app import build_app

    app = build_app({"serving": {"embedder": {"min_replicas": 2, "max_replicas": 5, "num_cpus": 1.5, "num_gpus": 0.25}}})
    ingress = app._bound_deployment  # Ray's Application keeps the bound deployment; its init args are the others
    deployments = {ingress.name: ingress}
    for arg in ingress.init_args:
        if hasattr(arg, "_bound_deployment"):
            deployments[arg._bound_deployment.name] = arg._bound_deployment
    assert set(deployments) == {"Ingress", "Detector", "OCR", "Embedder", "Search", "Sessions"}
    emb = deployments["Embedder"]
    assert emb._deployment_config.autoscaling_config.min_replicas == 2
    assert emb._deployment_config.autoscaling_config.max_replicas == 5
    assert emb.ray_actor_options["num_cpus"] == 1.5 and emb.ray_actor_options["num_gpus"] == 0.25
    # the sessions every ingress replica shares live in exactly one replica (Serve does not route by session)
    sessions = deployments["Sessions"]
    assert sessions._deployment_config.num_replicas == 1 and sessions._deployment_config.autoscaling_config is None


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("serve", "--config", "missing.yaml"), "no such Serve config file"),
        (("serve", "--config", "bad.yaml"), "not valid YAML"),
        (("serve", "--config", "other.yaml"), "serve_app.app:build_app"),
        (("serve", "--try", "nope.jpg"), "no such photo"),
    ],
)
def test_serve_refuses_bad_arguments_in_one_line(tmp_path, cli, args, needle):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "bad.yaml").write_text("applications: [unclosed\n")
    (tmp_path / "work" / "other.yaml").write_text("applications:\n  - import_path: other:app\n")
    r = cli(tmp_path, *args, timeout=120)
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("visearch: error:") and needle in r.stderr
