"""The AWS Terraform in infra/terraform: it parses, it holds what the deployment relies on, checkov passes.

Nothing here can run `terraform init` (providers cannot be downloaded), so the checks are static:
python-hcl2 parses every file, the tests below assert the structure that matters, and checkov
(run from its own venv, `make checkov`: docs/infra.md says why) reports no failed check, except
the trade-offs dev.tfvars makes on purpose.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import hcl2
import pytest
from hcl2 import SerializationOptions

REPO = Path(__file__).resolve().parents[2]
TF_DIR = REPO / "infra" / "terraform"
TF_FILES = sorted(TF_DIR.glob("*.tf"))
TFVARS_FILES = sorted((TF_DIR / "envs").glob("*.tfvars"))

# Strings without their quotes, blocks as plain lists of dicts, comments kept (checkov skips live there).
_OPTIONS = SerializationOptions(strip_string_quotes=True, explicit_blocks=False, with_comments=True)

# A suppression names one check and says why on the same line: `#checkov:skip=CKV_AWS_18:reason`.
_SKIP = re.compile(r"#checkov:skip=(CKV2?_[A-Z0-9]+_\d+):(.*)$")
_MIN_REASON = 20


def _parse(path: Path) -> dict:
    with path.open() as f:
        return hcl2.load(f, serialization_options=_OPTIONS)


@pytest.fixture(scope="module")
def tf() -> dict[str, dict]:
    """The root module as {block kind: {name or (type, name): body}} over every .tf file."""
    merged: dict[str, dict] = {"resource": {}, "data": {}, "variable": {}, "output": {}, "locals": {}, "terraform": {}}
    for path in TF_FILES:
        doc = _parse(path)
        for kind in ("resource", "data"):
            for block in doc.get(kind, []):
                for type_, by_name in block.items():
                    for name, body in by_name.items():
                        assert (type_, name) not in merged[kind], f"{kind} {type_}.{name} declared twice"
                        merged[kind][(type_, name)] = body
        for kind in ("variable", "output"):
            for block in doc.get(kind, []):
                for name, body in block.items():
                    assert name not in merged[kind], f"{kind} {name} declared twice"
                    merged[kind][name] = body
        for block in doc.get("locals", []):
            merged["locals"].update(block)
        for block in doc.get("terraform", []):
            merged["terraform"].update(block)
    return merged


def _of_type(tf: dict, type_: str, kind: str = "resource") -> dict[str, dict]:
    return {name: body for (t, name), body in tf[kind].items() if t == type_}


def _skips(body: dict) -> set[str]:
    """Check ids suppressed inside one block."""
    found = set()
    for comment in body.get("__comments__", []):
        m = re.match(r"checkov:skip=(CKV2?_[A-Z0-9]+_\d+):", comment["value"])
        if m:
            found.add(m.group(1))
    return found


def _companion(tf: dict, type_: str, bucket: str) -> dict | None:
    """The aws_s3_bucket_* resource configuring aws_s3_bucket.<bucket>, if any."""
    for body in _of_type(tf, type_).values():
        if re.search(rf"\baws_s3_bucket\.{bucket}\b", str(body.get("bucket", ""))):
            return body
    return None


# --- parsing ------------------------------------------------------------------------------------


def test_there_is_a_root_module_and_two_environments() -> None:
    names = {p.name for p in TF_FILES}
    assert {"versions.tf", "providers.tf", "variables.tf", "outputs.tf"} <= names
    assert [p.name for p in TFVARS_FILES] == ["dev.tfvars", "prod.tfvars"]


@pytest.mark.parametrize("path", TF_FILES + TFVARS_FILES, ids=lambda p: str(p.relative_to(TF_DIR)))
def test_file_parses(path: Path) -> None:
    assert isinstance(_parse(path), dict)


def test_providers_and_terraform_version_are_pinned(tf: dict) -> None:
    assert tf["terraform"].get("required_version", "").startswith(">=")
    providers = tf["terraform"]["required_providers"][0]
    for name in ("aws", "kubernetes", "helm"):
        assert providers[name]["source"] == f"hashicorp/{name}"
        assert providers[name]["version"], name


# --- variables and environments -----------------------------------------------------------------


def test_every_variable_has_a_description_and_a_type(tf: dict) -> None:
    for name, body in tf["variable"].items():
        assert body.get("description", "").strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"


def test_every_output_has_a_description(tf: dict) -> None:
    for name, body in tf["output"].items():
        assert body.get("description", "").strip(), f"output {name} has no description"


@pytest.mark.parametrize("name", [
    "region", "environment", "kubernetes_version",
    "cpu_instance_types", "cpu_node_min_size", "cpu_node_desired_size", "cpu_node_max_size",
    "gpu_instance_types", "gpu_node_min_size", "gpu_node_desired_size", "gpu_node_max_size",
    "qdrant_replicas", "qdrant_shards", "qdrant_replication_factor",
])
def test_variable_is_validated(tf: dict, name: str) -> None:
    validations = tf["variable"][name].get("validation", [])
    assert validations, f"variable {name} has no validation block"
    for v in validations:
        assert v["condition"] and v["error_message"]


def test_environment_is_dev_or_prod(tf: dict) -> None:
    environment = tf["variable"]["environment"]
    assert "default" not in environment, "the environment must be chosen, never defaulted"
    condition = environment["validation"][0]["condition"]
    assert '"dev"' in condition and '"prod"' in condition


@pytest.mark.parametrize("path", TFVARS_FILES, ids=lambda p: p.name)
def test_tfvars_set_only_declared_variables(tf: dict, path: Path) -> None:
    values = _parse(path)
    values.pop("__comments__", None)
    undeclared = set(values) - set(tf["variable"])
    assert not undeclared, f"{path.name} sets undeclared variables: {sorted(undeclared)}"
    assert values["environment"] == path.stem


def test_prod_keeps_the_safety_defaults(tf: dict) -> None:
    prod = _parse(TF_DIR / "envs" / "prod.tfvars")
    for name in ("db_multi_az", "db_deletion_protection"):
        assert tf["variable"][name]["default"] is True, f"{name} must default to true"
        assert prod.get(name, True) is True, f"prod.tfvars turns {name} off"
    assert prod["qdrant_replicas"] >= 3
    assert prod["qdrant_replication_factor"] >= 2
    assert prod.get("cluster_endpoint_public_access", False) is False


# --- what the deployment relies on ----------------------------------------------------------------


def test_network_spans_three_zones_with_nat(tf: dict) -> None:
    assert "azs = sort(data.aws_availability_zones.selected.names)" in (TF_DIR / "main.tf").read_text()
    assert tf["variable"]["availability_zone_letters"]["default"] == ["a", "b", "c"]
    subnets = _of_type(tf, "aws_subnet")
    assert {"public", "private"} <= set(subnets)
    assert all(body["map_public_ip_on_launch"] is False for name, body in subnets.items() if name == "public")
    assert _of_type(tf, "aws_nat_gateway")
    for table in _of_type(tf, "aws_route_table").values():
        assert table["route"], "every route table has a default route"
    assert _of_type(tf, "aws_flow_log")


def test_every_bucket_is_versioned_encrypted_private_logged_and_tls_only(tf: dict) -> None:
    policies = _of_type(tf, "aws_iam_policy_document", kind="data")
    buckets = _of_type(tf, "aws_s3_bucket")
    assert {"data", "logs"} <= set(buckets)
    for name, bucket in buckets.items():
        skips = _skips(bucket)

        versioning = _companion(tf, "aws_s3_bucket_versioning", name)
        assert versioning and versioning["versioning_configuration"][0]["status"] == "Enabled", name

        sse = _companion(tf, "aws_s3_bucket_server_side_encryption_configuration", name)
        assert sse, f"bucket {name} has no default encryption"
        algorithm = sse["rule"][0]["apply_server_side_encryption_by_default"][0]["sse_algorithm"]
        assert algorithm == "aws:kms" or "CKV_AWS_145" in skips, f"bucket {name} is not KMS-encrypted"

        block = _companion(tf, "aws_s3_bucket_public_access_block", name)
        assert block, f"bucket {name} has no public access block"
        for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
            assert block[flag] is True, f"bucket {name}: {flag}"

        assert _companion(tf, "aws_s3_bucket_logging", name) or "CKV_AWS_18" in skips, f"bucket {name} is not logged"

        policy = _companion(tf, "aws_s3_bucket_policy", name)
        assert policy, f"bucket {name} has no bucket policy"
        document = re.search(r"data\.aws_iam_policy_document\.(\w+)", policy["policy"]).group(1)
        statements = policies[document]["statement"]
        assert any(
            s["effect"] == "Deny" and c["variable"] == "aws:SecureTransport" and c["values"] == ["false"]
            for s in statements for c in s.get("condition", [])
        ), f"bucket {name} accepts plain HTTP"


def test_catalog_models_and_mlflow_buckets_exist(tf: dict) -> None:
    assert set(tf["locals"]["buckets"]) == {"catalog", "models", "mlflow"}


def test_gpu_node_group_is_tainted_and_labelled(tf: dict) -> None:
    groups = _of_type(tf, "aws_eks_node_group")
    assert set(groups) == {"cpu", "gpu"}
    gpu, cpu = groups["gpu"], groups["cpu"]
    assert "NVIDIA" in gpu["ami_type"]
    assert gpu["taint"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert gpu["labels"]["nvidia.com/gpu.present"] == "true"  # the device plugin's chart selects nodes by it
    assert gpu["labels"]["visearch.io/pool"] == "gpu"
    assert "taint" not in cpu
    assert cpu["labels"]["visearch.io/pool"] == "cpu"


def test_nodes_keep_pods_away_from_the_instance_role(tf: dict) -> None:
    for name, template in _of_type(tf, "aws_launch_template").items():
        metadata = template["metadata_options"][0]
        assert metadata["http_tokens"] == "required", name
        assert metadata["http_put_response_hop_limit"] == 1, name
        assert template["block_device_mappings"][0]["ebs"][0]["encrypted"] is True, name


def test_cluster_encrypts_secrets_and_logs_everything(tf: dict) -> None:
    cluster = _of_type(tf, "aws_eks_cluster")["this"]
    assert cluster["encryption_config"][0]["resources"] == ["secrets"]
    assert len(cluster["enabled_cluster_log_types"]) == 5
    assert cluster["vpc_config"][0]["endpoint_private_access"] is True
    assert tf["variable"]["cluster_endpoint_public_access"]["default"] is False


def test_mlflow_database_is_private_encrypted_and_backed_up(tf: dict) -> None:
    db = _of_type(tf, "aws_db_instance")["mlflow"]
    assert db["engine"] == "postgres"
    assert db["storage_encrypted"] is True and db["kms_key_id"]
    assert db["publicly_accessible"] is False
    assert db["multi_az"] == "${var.db_multi_az}"
    assert db["deletion_protection"] == "${var.db_deletion_protection}"
    assert db["backup_retention_period"] == "${var.db_backup_retention_days}"
    assert db.get("manage_master_user_password") is True or db["password"] == "${random_password.mlflow_db.result}"
    secret = _of_type(tf, "aws_secretsmanager_secret")["mlflow_db"]
    assert secret["kms_key_id"]


def test_pods_reach_s3_through_irsa_not_static_keys(tf: dict) -> None:
    assert not _of_type(tf, "aws_iam_access_key") and not _of_type(tf, "aws_iam_user")
    assert _of_type(tf, "aws_iam_openid_connect_provider")
    assert {"ray", "mlflow"} <= set(tf["locals"]["irsa"])
    trust = _of_type(tf, "aws_iam_policy_document", kind="data")["irsa_assume"]["statement"][0]
    assert trust["actions"] == ["sts:AssumeRoleWithWebIdentity"]
    assert {c["variable"].rsplit(":", 1)[1] for c in trust["condition"]} == {"sub", "aud"}
    for role in ("ray", "mlflow"):
        policy = _of_type(tf, "aws_iam_role_policy")[role]
        assert f'aws_iam_role.irsa["{role}"]' in policy["role"]


@pytest.mark.parametrize("chart", ["nvidia-device-plugin", "kuberay-operator", "qdrant", "mlflow"])
def test_helm_release_is_pinned(tf: dict, chart: str) -> None:
    releases = [r for r in _of_type(tf, "helm_release").values() if r["chart"] == chart]
    assert len(releases) == 1, f"one helm_release of {chart}"
    assert releases[0]["version"], f"{chart} has no pinned version"


def test_qdrant_and_mlflow_are_configured_from_the_stack() -> None:
    # Chart values are yamlencode() expressions, opaque to the parser: read them as text.
    helm = re.sub(r"\s+", " ", (TF_DIR / "helm.tf").read_text())
    for setting in (
        "replicaCount = var.qdrant_replicas",
        "storageClassName = kubernetes_storage_class_v1.gp3.metadata[0].name",
        "requests = { cpu = var.qdrant_resources.cpu, memory = var.qdrant_resources.memory }",
        "proxiedArtifactStorage = true",
        "host = aws_db_instance.mlflow.address",
        'bucket = aws_s3_bucket.data["mlflow"].id',
        '"eks.amazonaws.com/role-arn" = aws_iam_role.irsa["mlflow"].arn',
    ):
        assert setting in helm, setting


def test_outputs_feed_the_application(tf: dict) -> None:
    expected = {
        "cluster_name", "cluster_endpoint", "catalog_bucket", "models_bucket", "mlflow_artifacts_bucket",
        "rds_endpoint", "ray_irsa_role_arn", "mlflow_irsa_role_arn", "mlflow_tracking_uri", "qdrant_url",
        "visearch_env",
    }
    assert expected <= set(tf["output"])
    env = tf["locals"]["visearch_env"]
    # the names visearch/config.py reads
    assert {"VISEARCH_MODELS__MLFLOW_TRACKING_URI", "VISEARCH_INDEX__BACKEND", "VISEARCH_INDEX__URL",
            "VISEARCH_INDEX__SHARDS", "VISEARCH_INDEX__REPLICATION_FACTOR"} <= set(env)
    assert env["VISEARCH_INDEX__BACKEND"] == "cluster"


# --- checkov --------------------------------------------------------------------------------------


def test_every_checkov_suppression_gives_a_reason() -> None:
    for path in TF_FILES:
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if "checkov:skip" not in line:
                continue
            m = _SKIP.search(line)
            where = f"{path.name}:{number}"
            assert m, f"{where}: write suppressions as #checkov:skip=CKV_...:reason"
            assert len(m.group(2).strip()) >= _MIN_REASON, f"{where}: {m.group(1)} needs a reason"


def _checkov() -> str | None:
    candidates = [os.environ.get("CHECKOV_BIN"), str(REPO / ".venv-checkov" / "bin" / "checkov"), shutil.which("checkov")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


def _offline_env() -> dict[str, str]:
    """checkov's environment with every way out closed (pytest-socket does not reach a subprocess)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env.update(
        BC_SKIP_MAPPING="TRUE",  # no download of the guideline / severity mapping
        CKV_SKIP_PACKAGE_UPDATE_CHECK="true",  # no PyPI "newer version" query at import
        # Anything that still tries goes to the discard port on loopback and fails at once.
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        NO_PROXY="",
    )
    for name in ("http_proxy", "https_proxy", "no_proxy"):
        env.pop(name, None)
    return env


# What dev.tfvars trades for cost and convenience (docs/infra.md); nothing else may fail there.
_DEV_TRADE_OFFS = {
    "CKV_AWS_39",  # public API endpoint, limited to cluster_endpoint_public_access_cidrs
    "CKV_AWS_157",  # no database standby
    "CKV_AWS_293",  # no deletion protection
    "CKV_AWS_338",  # logs kept 30 days, not a year
}


@pytest.mark.parametrize("var_file", [None, "prod.tfvars", "dev.tfvars"], ids=["defaults", "prod", "dev"])
def test_checkov_passes(var_file: str | None) -> None:
    checkov = _checkov()
    if checkov is None:
        pytest.skip("checkov is not installed: `make checkov` creates .venv-checkov (docs/infra.md)")
    args = [checkov, "--directory", str(TF_DIR), "--framework", "terraform", "--output", "json", "--compact",
            "--skip-download"]
    if var_file:
        args += ["--var-file", str(TF_DIR / "envs" / var_file)]
    run = subprocess.run(args, capture_output=True, text=True, env=_offline_env(), timeout=300, check=False)
    assert run.stdout.strip(), f"checkov printed nothing (exit {run.returncode}): {run.stderr[-2000:]}"
    report = json.loads(run.stdout)
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 150, summary  # the whole tree was scanned, not an empty folder
    failed = report["results"]["failed_checks"]
    accepted = _DEV_TRADE_OFFS if var_file == "dev.tfvars" else set()
    unexpected = [f"{c['check_id']} {c['resource']} ({c['file_path']}): {c['check_name']}"
                  for c in failed if c["check_id"] not in accepted]
    assert not unexpected, "checkov failed checks:\n" + "\n".join(unexpected)
    for skipped in report["results"]["skipped_checks"]:
        assert skipped["check_result"].get("suppress_comment", "").strip(), skipped["check_id"]


def test_the_rayservice_runs_under_what_terraform_creates(tf: dict) -> None:
    """deployments/rayservice.yaml's pods use the namespace, service account (IRSA), config map, secret and GPU
    taint that the Terraform module makes for them."""
    import yaml

    manifest = yaml.safe_load((REPO / "deployments" / "rayservice.yaml").read_text())
    locals_ = tf["locals"]
    assert manifest["metadata"]["namespace"] == locals_["ray_namespace"]
    maps = _of_type(tf, "kubernetes_config_map_v1")["visearch_env"]["metadata"][0]
    secret = _of_type(tf, "kubernetes_secret_v1")["visearch_index"]["metadata"][0]
    cluster = manifest["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in cluster["workerGroupSpecs"]]
    for pod in pods:
        assert pod["serviceAccountName"] == locals_["ray_service_account"]
        env = pod["containers"][0]["envFrom"]
        assert {"configMapRef": {"name": maps["name"]}} in env and {"secretRef": {"name": secret["name"]}} in env
    taint = _of_type(tf, "aws_eks_node_group")["gpu"]["taint"][0]
    gpu = next(g for g in cluster["workerGroupSpecs"] if g["groupName"] == "gpu")["template"]["spec"]
    assert {"key": taint["key"], "operator": "Equal", "value": taint["value"], "effect": "NoSchedule"} in gpu["tolerations"]
    assert taint["effect"] == "NO_SCHEDULE"
    labels = {name: body["labels"] for name, body in _of_type(tf, "aws_eks_node_group").items()}
    for group in cluster["workerGroupSpecs"]:
        ((key, pool),) = group["template"]["spec"]["nodeSelector"].items()
        assert labels[group["groupName"]][key] == pool == group["groupName"]
