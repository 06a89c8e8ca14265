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


def test_the_rayservice_is_generated_from_the_gpu_config(cli, tmp_path):
    """deployments/rayservice.yaml serves deployments/gpu.yaml verbatim, and its worker groups can hold every
    deployment's replicas at their lower and upper bounds."""
    import yaml

    from serve_app.rayservice import CPU_WORKER, GPU_WORKER, SERVE_DEPLOYMENTS
    from visearch.config import Settings

    root = Path(__file__).resolve().parents[2]
    gpu = yaml.safe_load((root / "deployments" / "gpu.yaml").read_text())
    manifest = yaml.safe_load((root / "deployments" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService" and yaml.safe_load(manifest["spec"]["serveConfigV2"]) == gpu
    groups = {g["groupName"]: g for g in manifest["spec"]["rayClusterConfig"]["workerGroupSpecs"]}
    serving = Settings(**gpu["applications"][0]["args"]).serving
    for bound, key in (("min_replicas", "minReplicas"), ("max_replicas", "maxReplicas")):
        deps = [getattr(serving, d) for d in SERVE_DEPLOYMENTS]
        on_cpu = sum(getattr(d, bound) * d.num_cpus for d in deps if not d.num_gpus)
        on_gpu = [d for d in deps if d.num_gpus]
        assert groups["cpu"][key] * CPU_WORKER.cpus >= on_cpu
        assert groups["gpu"][key] * GPU_WORKER.gpus >= sum(getattr(d, bound) * d.num_gpus for d in on_gpu)
        assert groups["gpu"][key] * GPU_WORKER.cpus >= sum(getattr(d, bound) * d.num_cpus for d in on_gpu)
    assert groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # the committed file is exactly what the generator writes; a stale one fails with the command to fix it
    (tmp_path / "work").mkdir()
    r = cli(tmp_path, "deploy", "rayservice", "--config", str(root / "deployments" / "gpu.yaml"),
            "--out", str(root / "deployments" / "rayservice.yaml"), "--check")
    assert r.returncode == 0, r.stderr
    stale = tmp_path / "stale.yaml"
    stale.write_text("kind: RayService\n")
    r = cli(tmp_path, "deploy", "rayservice", "--config", str(root / "deployments" / "gpu.yaml"), "--out", str(stale),
            "--check")
    assert r.returncode == 1 and "visearch deploy rayservice --config" in r.stderr.strip().splitlines()[-1]
