# What the workloads expect to find in the cluster before the charts and the RayService arrive:
# their namespaces, the storage class for Qdrant, the Ray pods' service account and the settings
# the application reads (visearch/config.py: VISEARCH_* variables).

resource "kubernetes_namespace_v1" "this" {
  for_each = toset([local.ray_namespace, local.mlflow_namespace, local.qdrant_namespace])

  metadata {
    name = each.value
  }

  depends_on = [aws_eks_node_group.cpu]
}

# gp3 with encryption and expansion; Retain because a Qdrant volume deleted with its claim is an
# index to rebuild from the catalog (an hour at 1M products), not something to lose by accident.
resource "kubernetes_storage_class_v1" "gp3" {
  metadata {
    name = "gp3-encrypted"
  }

  storage_provisioner    = "ebs.csi.aws.com"
  reclaim_policy         = "Retain"
  volume_binding_mode    = "WaitForFirstConsumer" # the volume is made in the zone the pod is scheduled to
  allow_volume_expansion = true

  parameters = {
    type      = "gp3"
    encrypted = "true"
    fsType    = "ext4"
  }

  depends_on = [aws_eks_addon.this]
}

# The RayService (KubeRay) runs its head and workers under this account; the annotation is all
# IRSA needs to hand them temporary credentials for the catalog and models buckets.
resource "kubernetes_service_account_v1" "ray" {
  metadata {
    name      = local.ray_service_account
    namespace = kubernetes_namespace_v1.this[local.ray_namespace].metadata[0].name

    annotations = {
      "eks.amazonaws.com/role-arn" = aws_iam_role.irsa["ray"].arn
    }
  }
}

# Non-secret settings for the Ray pods (envFrom: configMapRef visearch-env).
resource "kubernetes_config_map_v1" "visearch_env" {
  metadata {
    name      = "visearch-env"
    namespace = kubernetes_namespace_v1.this[local.ray_namespace].metadata[0].name
  }

  data = local.visearch_env
}

# The Qdrant API key for the Ray pods (envFrom: secretRef visearch-index).
resource "kubernetes_secret_v1" "visearch_index" {
  metadata {
    name      = "visearch-index"
    namespace = kubernetes_namespace_v1.this[local.ray_namespace].metadata[0].name
  }

  data = {
    VISEARCH_INDEX__API_KEY = random_password.qdrant_api_key.result
  }
}

resource "random_password" "qdrant_api_key" {
  length  = 48
  special = false
}

# The database login the MLflow chart reads (backendStore.existingDatabaseSecret).
resource "kubernetes_secret_v1" "mlflow_db" {
  metadata {
    name      = "mlflow-db"
    namespace = kubernetes_namespace_v1.this[local.mlflow_namespace].metadata[0].name
  }

  data = {
    username = aws_db_instance.mlflow.username
    password = random_password.mlflow_db.result
  }
}

locals {
  # The application's view of this stack: the variables visearch/config.py reads.
  visearch_env = {
    VISEARCH_MODELS__MLFLOW_TRACKING_URI = local.mlflow_tracking_uri
    MLFLOW_TRACKING_URI                  = local.mlflow_tracking_uri
    VISEARCH_INDEX__BACKEND              = "cluster"
    VISEARCH_INDEX__URL                  = local.qdrant_url
    VISEARCH_INDEX__SHARDS               = tostring(var.qdrant_shards)
    VISEARCH_INDEX__REPLICATION_FACTOR   = tostring(var.qdrant_replication_factor)
    AWS_DEFAULT_REGION                   = var.region
  }
}
