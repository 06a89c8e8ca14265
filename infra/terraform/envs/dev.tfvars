# A small, cheap stack that can be torn down: one NAT gateway, no database standby, one Qdrant node.
environment = "dev"
region      = "eu-central-1"

single_nat_gateway = true

# Applied from laptops: a public API endpoint, limited to the office / VPN range (replace it).
cluster_endpoint_public_access       = true
cluster_endpoint_public_access_cidrs = ["203.0.113.0/24"]

cpu_instance_types    = ["m7i.xlarge"]
cpu_node_min_size     = 2
cpu_node_desired_size = 2
cpu_node_max_size     = 4

gpu_instance_types    = ["g6.xlarge"]
gpu_node_min_size     = 0
gpu_node_desired_size = 1
gpu_node_max_size     = 1

log_retention_days = 30

db_instance_class            = "db.t4g.medium"
db_allocated_storage_gib     = 20
db_max_allocated_storage_gib = 100
db_multi_az                  = false
db_deletion_protection       = false
db_backup_retention_days     = 3

qdrant_replicas           = 1
qdrant_shards             = 1
qdrant_replication_factor = 1
qdrant_storage_gib        = 20
qdrant_resources = {
  cpu    = "500m"
  memory = "2Gi"
}

mlflow_replicas = 1
