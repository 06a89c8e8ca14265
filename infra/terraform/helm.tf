# Charts pinned to versions whose values are used below; bump them deliberately.
locals {
  charts = {
    nvidia_device_plugin = { repository = "https://nvidia.github.io/k8s-device-plugin", version = "0.17.1" }
    kuberay_operator     = { repository = "https://ray-project.github.io/kuberay-helm", version = "1.5.0" }
    qdrant               = { repository = "https://qdrant.github.io/qdrant-helm", version = "1.15.4" }
    mlflow               = { repository = "https://community-charts.github.io/helm-charts", version = "1.12.0" }
  }

  on_cpu_nodes = { "visearch.io/pool" = "cpu" }
}

# Exposes nvidia.com/gpu to the scheduler. Its default affinity picks nodes labelled
# nvidia.com/gpu.present=true and it tolerates the nvidia.com/gpu taint, both set in eks.tf.
resource "helm_release" "nvidia_device_plugin" {
  name       = "nvidia-device-plugin"
  namespace  = "kube-system"
  repository = local.charts.nvidia_device_plugin.repository
  chart      = "nvidia-device-plugin"
  version    = local.charts.nvidia_device_plugin.version

  depends_on = [aws_eks_node_group.gpu]
}

# Reconciles the RayService that runs the Serve application (deployments/, serve_app/).
resource "helm_release" "kuberay_operator" {
  name             = "kuberay-operator"
  namespace        = "kuberay-system"
  create_namespace = true
  repository       = local.charts.kuberay_operator.repository
  chart            = "kuberay-operator"
  version          = local.charts.kuberay_operator.version
  atomic           = true

  values = [yamlencode({
    nodeSelector = local.on_cpu_nodes
  })]

  depends_on = [aws_eks_node_group.cpu]
}

# The vector index (docs/index.md, "Running against a Qdrant cluster"): a Raft cluster of
# qdrant_replicas nodes on encrypted gp3 volumes, spread over the three zones. Shards and replication
# are per collection and set by the application (VISEARCH_INDEX__SHARDS / __REPLICATION_FACTOR).
resource "helm_release" "qdrant" {
  name       = "qdrant"
  namespace  = kubernetes_namespace_v1.this[local.qdrant_namespace].metadata[0].name
  repository = local.charts.qdrant.repository
  chart      = "qdrant"
  version    = local.charts.qdrant.version
  atomic     = true
  timeout    = 900 # volumes are created and attached one pod at a time

  values = [yamlencode({
    replicaCount = var.qdrant_replicas

    config = {
      cluster = { enabled = true }
    }

    persistence = {
      accessModes      = ["ReadWriteOnce"]
      size             = "${var.qdrant_storage_gib}Gi"
      storageClassName = kubernetes_storage_class_v1.gp3.metadata[0].name
    }

    # Memory limit equal to the request: Qdrant memory-maps its segments, and being OOM-killed at a
    # known size is better than squeezing the other pods on the node.
    resources = {
      requests = { cpu = var.qdrant_resources.cpu, memory = var.qdrant_resources.memory }
      limits   = { memory = var.qdrant_resources.memory }
    }

    nodeSelector = local.on_cpu_nodes

    topologySpreadConstraints = [{
      maxSkew           = 1
      topologyKey       = "topology.kubernetes.io/zone"
      whenUnsatisfiable = "ScheduleAnyway"
      labelSelector = {
        matchLabels = { "app.kubernetes.io/name" = "qdrant", "app.kubernetes.io/instance" = "qdrant" }
      }
    }]

    # A node drain takes one Qdrant node at a time, so a replicated shard always has a live copy.
    podDisruptionBudget = {
      enabled        = var.qdrant_replicas > 1
      maxUnavailable = 1
    }
  })]

  set_sensitive = [{
    name  = "apiKey"
    value = random_password.qdrant_api_key.result
  }]

  depends_on = [aws_eks_node_group.cpu, aws_eks_addon.this]
}

# The shared MLflow tracking server of mlflow/README.md: Postgres backend store, artifacts in S3
# proxied by the server (--serve-artifacts), so clients need no bucket access and only the
# server's IRSA role can read or write the artifact prefix.
resource "helm_release" "mlflow" {
  name       = "mlflow"
  namespace  = kubernetes_namespace_v1.this[local.mlflow_namespace].metadata[0].name
  repository = local.charts.mlflow.repository
  chart      = "mlflow"
  version    = local.charts.mlflow.version
  atomic     = true
  timeout    = 600

  values = [yamlencode({
    replicaCount = var.mlflow_replicas
    image        = { tag = var.mlflow_image_tag }

    serviceAccount = {
      create      = true
      name        = local.mlflow_service
      annotations = { "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["mlflow"].arn }
    }

    backendStore = {
      databaseMigration       = true # `mlflow db upgrade` before a new version serves (mlflow/README.md)
      databaseConnectionCheck = true
      postgres = {
        enabled  = true
        host     = aws_db_instance.mlflow.address
        port     = aws_db_instance.mlflow.port
        database = aws_db_instance.mlflow.db_name
        driver   = "psycopg2"
      }
      existingDatabaseSecret = {
        name        = kubernetes_secret_v1.mlflow_db.metadata[0].name
        usernameKey = "username"
        passwordKey = "password"
      }
    }

    artifactRoot = {
      proxiedArtifactStorage = true
      s3 = {
        enabled = true
        bucket  = aws_s3_bucket.data["mlflow"].id
        path    = local.mlflow_artifacts_prefix
      }
    }

    extraArgs = {
      workers = "4"
      # MLflow refuses Host headers it does not know (DNS rebinding guard); these are the names
      # in-cluster clients and `kubectl port-forward` use.
      allowedHosts = join(",", [
        "${local.mlflow_service}.${local.mlflow_namespace}.svc.cluster.local:5000",
        "${local.mlflow_service}.${local.mlflow_namespace}.svc:5000",
        "${local.mlflow_service}.${local.mlflow_namespace}:5000",
        "localhost:5000",
      ])
    }

    extraEnvVars = {
      AWS_DEFAULT_REGION = var.region
    }

    resources = {
      requests = { cpu = "500m", memory = "1Gi" }
      limits   = { memory = "2Gi" }
    }

    nodeSelector = local.on_cpu_nodes
  })]

  depends_on = [aws_eks_node_group.cpu, aws_iam_role_policy.mlflow]
}
