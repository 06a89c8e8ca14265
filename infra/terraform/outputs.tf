output "cluster_name" {
  description = "EKS cluster name (aws eks update-kubeconfig --name ...)."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "kubeconfig_command" {
  description = "Command that points kubectl at the cluster."
  value       = "aws eks update-kubeconfig --name ${aws_eks_cluster.this.name} --region ${var.region}"
}

output "oidc_provider_arn" {
  description = "IAM OIDC provider of the cluster, for further IRSA roles."
  value       = aws_iam_openid_connect_provider.eks.arn
}

output "catalog_bucket" {
  description = "Bucket of the product catalog and its photos (read by the Ray pods)."
  value       = aws_s3_bucket.data["catalog"].id
}

output "models_bucket" {
  description = "Bucket for model bundles and s3:// model references (VISEARCH_MODELS__* = s3://BUCKET/KEY)."
  value       = aws_s3_bucket.data["models"].id
}

output "mlflow_artifacts_bucket" {
  description = "Bucket of the MLflow artifacts (reached only through the MLflow server)."
  value       = aws_s3_bucket.data["mlflow"].id
}

output "mlflow_artifacts_destination" {
  description = "MLFLOW_ARTIFACTS_DESTINATION of mlflow/server.env.example."
  value       = "s3://${aws_s3_bucket.data["mlflow"].id}/${local.mlflow_artifacts_prefix}"
}

output "logs_bucket" {
  description = "Bucket receiving S3 access logs and VPC flow logs."
  value       = aws_s3_bucket.logs.id
}

output "rds_endpoint" {
  description = "MLflow Postgres endpoint, host:port."
  value       = aws_db_instance.mlflow.endpoint
}

output "mlflow_db_secret_arn" {
  description = "Secrets Manager secret holding the MLflow database credentials (MLFLOW_BACKEND_STORE_URI's user and password)."
  value       = aws_secretsmanager_secret.mlflow_db.arn
}

output "ray_irsa_role_arn" {
  description = "IAM role of the Ray pods (service account visearch/visearch-ray): read catalog and models."
  value       = aws_iam_role.irsa["ray"].arn
}

output "mlflow_irsa_role_arn" {
  description = "IAM role of the MLflow server (service account mlflow/mlflow): read and write its artifact prefix."
  value       = aws_iam_role.irsa["mlflow"].arn
}

output "ray_service_account" {
  description = "namespace/name of the service account the RayService must run under."
  value       = "${local.ray_namespace}/${local.ray_service_account}"
}

output "mlflow_tracking_uri" {
  description = "MLflow server URL inside the cluster (VISEARCH_MODELS__MLFLOW_TRACKING_URI, MLFLOW_TRACKING_URI)."
  value       = local.mlflow_tracking_uri
}

output "qdrant_url" {
  description = "Qdrant URL inside the cluster (VISEARCH_INDEX__URL)."
  value       = local.qdrant_url
}

output "visearch_env" {
  description = "Application settings this stack determines; also in the visearch-env ConfigMap (the Qdrant API key is in the visearch-index Secret)."
  value       = local.visearch_env
}
