# PostgreSQL for the MLflow backend store: runs, metrics, the model registry and its aliases
# (mlflow/README.md). Reached only from the cluster's nodes, over TLS.

resource "aws_db_subnet_group" "mlflow" {
  name       = "${local.name}-mlflow"
  subnet_ids = [for s in aws_subnet.private : s.id]
}

resource "aws_security_group" "mlflow_db" {
  name        = "${local.name}-mlflow-db"
  description = "MLflow Postgres: reachable from the EKS nodes only"
  vpc_id      = aws_vpc.this.id
  # No egress rules: the database opens no connections of its own.
}

# Managed node groups without their own security groups get the cluster security group, so this
# admits the MLflow pods (and nothing outside the cluster).
resource "aws_vpc_security_group_ingress_rule" "mlflow_db_from_nodes" {
  security_group_id            = aws_security_group.mlflow_db.id
  description                  = "Postgres from EKS nodes and pods"
  referenced_security_group_id = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 5432
  to_port                      = 5432
}

resource "aws_db_parameter_group" "mlflow" {
  name_prefix = "${local.name}-mlflow-"
  family      = "postgres${var.db_engine_version}"

  # Refuse unencrypted connections: the password and the registry travel over the VPC.
  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }

  # Schema changes (mlflow db upgrade) and slow queries end up in the exported postgresql log.
  parameter {
    name  = "log_statement"
    value = "ddl"
  }

  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }

  lifecycle {
    create_before_destroy = true
  }
}

# MLflow reads its password from a Kubernetes secret (kubernetes.tf), so the password is one
# Terraform knows. It is kept in Secrets Manager too, for people and jobs outside the cluster.
# No special characters: the chart puts it into a postgresql:// URI unescaped.
resource "random_password" "mlflow_db" {
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "mlflow_db" {
  #checkov:skip=CKV2_AWS_57:the MLflow pods read this password from a Kubernetes secret Terraform writes, so a rotation outside Terraform would lock them out; rotate with `terraform apply -replace=random_password.mlflow_db`
  name                    = "${local.name}/mlflow-db"
  description             = "MLflow backend store credentials (RDS PostgreSQL)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = var.environment == "prod" ? 30 : 7
}

resource "aws_secretsmanager_secret_version" "mlflow_db" {
  secret_id = aws_secretsmanager_secret.mlflow_db.id
  secret_string = jsonencode({
    engine   = "postgres"
    host     = aws_db_instance.mlflow.address
    port     = aws_db_instance.mlflow.port
    dbname   = aws_db_instance.mlflow.db_name
    username = aws_db_instance.mlflow.username
    password = random_password.mlflow_db.result
  })
}

resource "aws_db_instance" "mlflow" {
  identifier     = "${local.name}-mlflow"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name  = "mlflow"
  username = "mlflow"
  password = random_password.mlflow_db.result
  port     = 5432

  allocated_storage     = var.db_allocated_storage_gib
  max_allocated_storage = var.db_max_allocated_storage_gib
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = aws_kms_key.this.arn

  multi_az               = var.db_multi_az
  publicly_accessible    = false
  db_subnet_group_name   = aws_db_subnet_group.mlflow.name
  vpc_security_group_ids = [aws_security_group.mlflow_db.id]
  parameter_group_name   = aws_db_parameter_group.mlflow.name
  ca_cert_identifier     = "rds-ca-rsa2048-g1"

  # IAM authentication is on for people debugging with short-lived tokens; MLflow uses the password.
  iam_database_authentication_enabled = true

  backup_retention_period   = var.db_backup_retention_days
  backup_window             = "02:00-03:00"
  maintenance_window        = "sun:03:30-sun:04:30"
  copy_tags_to_snapshot     = true
  deletion_protection       = var.db_deletion_protection
  skip_final_snapshot       = !var.db_deletion_protection
  final_snapshot_identifier = "${local.name}-mlflow-final"

  auto_minor_version_upgrade  = true
  allow_major_version_upgrade = false
  apply_immediately           = false

  enabled_cloudwatch_logs_exports       = ["postgresql", "upgrade"]
  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = true
  performance_insights_kms_key_id       = aws_kms_key.this.arn
  performance_insights_retention_period = 7

  depends_on = [aws_iam_role_policy_attachment.rds_monitoring]
}
