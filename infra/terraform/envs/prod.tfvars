# Production: every zone has its own NAT path, the database has a standby and cannot be deleted,
# Qdrant keeps two copies of each shard on three nodes. Applied from a runner inside the VPC
# (the API endpoint stays private).
environment = "prod"
region      = "eu-central-1"

single_nat_gateway             = false
cluster_endpoint_public_access = false

cpu_instance_types    = ["m7i.2xlarge"]
cpu_node_min_size     = 3
cpu_node_desired_size = 4
cpu_node_max_size     = 12

gpu_instance_types    = ["g6.xlarge", "g6.2xlarge"]
gpu_node_min_size     = 2
gpu_node_desired_size = 2
gpu_node_max_size     = 8

log_retention_days = 365

db_instance_class            = "db.m7g.large"
db_allocated_storage_gib     = 100
db_max_allocated_storage_gib = 1000
db_multi_az                  = true
db_deletion_protection       = true
db_backup_retention_days     = 30

qdrant_replicas           = 3
qdrant_shards             = 6
qdrant_replication_factor = 2
qdrant_storage_gib        = 200
qdrant_resources = {
  cpu    = "4"
  memory = "16Gi"
}

mlflow_replicas = 2
