"""The KubeRay RayService for a Serve config: one source (``deployments/gpu.yaml``), one generated manifest.

``visearch deploy rayservice`` writes ``deployments/rayservice.yaml``: the Serve config goes in verbatim
as ``serveConfigV2``, and the Ray cluster around it is sized from the same numbers: the CPU worker group
holds the replicas that need no GPU, the GPU worker group the ones that do (tolerating the GPU nodes'
taint), each group's minimum from the deployments' ``min_replicas`` and its maximum from their
``max_replicas``, so the autoscaler can always place what Serve asks for. The pods run under the service
account, config map and secret that ``infra/terraform`` creates (names below, checked by tests).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import yaml

from visearch.config import DeploymentSettings, ServingSettings, Settings
from visearch.errors import InvalidArgumentError

__all__ = ["ClusterNames", "WorkerShape", "rayservice", "render", "SERVE_DEPLOYMENTS"]

# every Serve deployment with replica bounds and resources in the settings (the Sessions store reserves nothing)
SERVE_DEPLOYMENTS = tuple(n for n, f in ServingSettings.model_fields.items() if f.annotation is DeploymentSettings)
GENERATED = "# Generated from {source} by `visearch deploy rayservice`: edit {source} and generate again.\n"


@dataclass(frozen=True)
class ClusterNames:
    """What infra/terraform creates for the Ray pods (locals in main.tf, resources in kubernetes.tf)."""

    namespace: str = "visearch"
    service_account: str = "visearch-ray"
    env_config_map: str = "visearch-env"
    index_secret: str = "visearch-index"
    gpu_taint: str = "nvidia.com/gpu"
    pool_label: str = "visearch.io/pool"  # "cpu" or "gpu" on each node group


@dataclass(frozen=True)
class WorkerShape:
    """One Ray worker pod: what it asks of its node (a pod per node, leaving room for the node's daemons)."""

    cpus: int
    memory_gib: int
    gpus: int = 0


# m7i.2xlarge (8 vCPU, 32 GiB) and g6.xlarge (4 vCPU, 16 GiB, one L4): Terraform's default node types
CPU_WORKER = WorkerShape(cpus=7, memory_gib=28)
GPU_WORKER = WorkerShape(cpus=3, memory_gib=14, gpus=1)
HEAD = WorkerShape(cpus=2, memory_gib=8)


def _groups(settings: Settings, cpu: WorkerShape, gpu: WorkerShape) -> dict[str, tuple[int, int]]:
    """(min, max) workers of each group for the deployments' replica bounds."""
    need = {"cpu": [0.0, 0.0], "gpu_cpus": [0.0, 0.0], "gpus": [0.0, 0.0]}
    for name in SERVE_DEPLOYMENTS:
        d = getattr(settings.serving, name)
        for i, replicas in enumerate((d.min_replicas, d.max_replicas)):
            if d.num_gpus > 0:
                need["gpus"][i] += replicas * d.num_gpus
                need["gpu_cpus"][i] += replicas * d.num_cpus
            else:
                need["cpu"][i] += replicas * d.num_cpus
    out = {"cpu": tuple(math.ceil(n / cpu.cpus) for n in need["cpu"])}
    if need["gpus"][1] > 0:
        if gpu.gpus < 1:
            raise InvalidArgumentError("deployments ask for GPUs but the GPU worker has none")
        out["gpu"] = tuple(max(math.ceil(g / gpu.gpus), math.ceil(c / gpu.cpus))
                           for g, c in zip(need["gpus"], need["gpu_cpus"], strict=True))
    return {k: (int(lo), int(hi)) for k, (lo, hi) in out.items()}


def _container(image: str, shape: WorkerShape, names: ClusterNames, ray_port: bool = False) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": str(shape.cpus), "memory": f"{shape.memory_gib}Gi"}
    if shape.gpus:
        resources["nvidia.com/gpu"] = str(shape.gpus)
    container: dict[str, Any] = {
        "name": "ray-head" if ray_port else "ray-worker",
        "image": image,
        "envFrom": [{"configMapRef": {"name": names.env_config_map}}, {"secretRef": {"name": names.index_secret}}],
        "resources": {"requests": resources, "limits": dict(resources)},
    }
    if ray_port:
        container["ports"] = [{"containerPort": 6379, "name": "gcs"}, {"containerPort": 8265, "name": "dashboard"},
                              {"containerPort": 8000, "name": "serve"}]
    return container


def _pod(container: dict[str, Any], names: ClusterNames, gpu: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"serviceAccountName": names.service_account, "containers": [container],
                            "nodeSelector": {names.pool_label: "gpu" if gpu else "cpu"}}
    if gpu:
        spec["tolerations"] = [{"key": names.gpu_taint, "operator": "Equal", "value": "true", "effect": "NoSchedule"}]
    return {"spec": spec}


def rayservice(serve_config: dict[str, Any], settings: Settings, *, image: str, name: str = "visearch",
               names: ClusterNames = ClusterNames(), cpu: WorkerShape = CPU_WORKER, gpu: WorkerShape = GPU_WORKER,
               head: WorkerShape = HEAD) -> dict[str, Any]:
    """The RayService manifest serving ``serve_config`` (a Serve config file's content), sized for ``settings``
    (that config's args over the defaults)."""
    import ray

    groups = _groups(settings, cpu, gpu)
    workers = []
    for group, (lo, hi) in groups.items():
        shape = gpu if group == "gpu" else cpu
        start = {"num-cpus": str(shape.cpus)} | ({"num-gpus": str(shape.gpus)} if shape.gpus else {})
        workers.append({"groupName": group, "replicas": lo, "minReplicas": lo, "maxReplicas": max(hi, lo),
                        "rayStartParams": start, "template": _pod(_container(image, shape, names), names, gpu=group == "gpu")})
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayService",
        "metadata": {"name": name, "namespace": names.namespace},
        "spec": {
            "serveConfigV2": yaml.safe_dump(serve_config, sort_keys=False),
            "rayClusterConfig": {
                "rayVersion": ray.__version__,
                "enableInTreeAutoscaling": True,
                "autoscalerOptions": {"upscalingMode": "Default", "idleTimeoutSeconds": 300},
                # the head runs Serve's controller and proxy only: no replica lands on it
                "headGroupSpec": {"rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
                                  "template": _pod(_container(image, head, names, ray_port=True), names)},
                "workerGroupSpecs": workers,
            },
        },
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the embedded Serve config) as literal blocks, readable in the manifest."""


_Dumper.add_representer(str, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", v, style="|" if "\n" in v else None))


def render(manifest: dict[str, Any], source: str) -> str:
    return GENERATED.format(source=source) + yaml.dump(manifest, Dumper=_Dumper, sort_keys=False, width=120)
