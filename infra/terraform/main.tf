data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# Zones are named, not discovered: a zone AWS adds, or one reported impaired during a plan, must not
# shift the subnets (and with them every node and the database) to other zones.
data "aws_availability_zones" "selected" {
  filter {
    name   = "zone-name"
    values = [for letter in var.availability_zone_letters : "${var.region}${letter}"]
  }
}

locals {
  name       = "${var.name}-${var.environment}"
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  # Three zones: Qdrant and the database standby survive the loss of one.
  azs = sort(data.aws_availability_zones.selected.names)

  # Namespaces and service accounts the IAM roles (iam.tf) and the Helm releases (helm.tf) agree on.
  ray_namespace       = "visearch"
  ray_service_account = "visearch-ray"
  mlflow_namespace    = "mlflow"
  mlflow_service      = "mlflow"
  qdrant_namespace    = "qdrant"

  mlflow_artifacts_prefix = "mlartifacts"
  mlflow_tracking_uri     = "http://${local.mlflow_service}.${local.mlflow_namespace}.svc.cluster.local:5000"
  qdrant_url              = "http://qdrant.${local.qdrant_namespace}.svc.cluster.local:6333"
}
