# --- where and what ------------------------------------------------------------------------------

variable "region" {
  description = "AWS region for every resource (the buckets, the cluster and the database stay together)."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-central-1."
  }
}

variable "environment" {
  description = "dev or prod: names every resource and selects the safety defaults the envs/*.tfvars files set."
  type        = string

  validation {
    condition     = contains(["dev", "prod"], var.environment)
    error_message = "environment must be dev or prod."
  }
}

variable "name" {
  description = "Prefix of every resource name; the environment is appended (visearch-prod-...)."
  type        = string
  default     = "visearch"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,15}$", var.name))
    error_message = "name must be 2-16 lower-case letters, digits or dashes, starting with a letter (it ends up in S3 bucket names)."
  }
}

variable "tags" {
  description = "Extra tags on every resource (cost centre, owner)."
  type        = map(string)
  default     = {}
}

# --- network ---------------------------------------------------------------------------------------

variable "availability_zone_letters" {
  description = "The three zones of the region to use, by letter (a, b, c: eu-central-1a, ...)."
  type        = list(string)
  default     = ["a", "b", "c"]

  validation {
    condition     = length(distinct(var.availability_zone_letters)) == 3 && alltrue([for l in var.availability_zone_letters : can(regex("^[a-z]$", l))])
    error_message = "availability_zone_letters must be three distinct zone letters such as [\"a\", \"b\", \"c\"]."
  }
}

variable "vpc_cidr" {
  description = "VPC address range; split into three private subnets (nodes and pods take their IPs from them) and three public ones."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && try(tonumber(split("/", var.vpc_cidr)[1]) <= 18, false)
    error_message = "vpc_cidr must be an IPv4 CIDR of /18 or larger: every pod takes a VPC address."
  }
}

variable "single_nat_gateway" {
  description = "One NAT gateway for all three zones (cheaper, loses egress when its zone fails) instead of one per zone."
  type        = bool
  default     = false
}

# --- cluster ---------------------------------------------------------------------------------------

variable "kubernetes_version" {
  description = "EKS Kubernetes version (minor releases in standard support)."
  type        = string
  default     = "1.34"

  validation {
    condition     = can(regex("^1\\.(3[0-9])$", var.kubernetes_version))
    error_message = "kubernetes_version must look like 1.34."
  }
}

variable "cluster_endpoint_public_access" {
  description = "Expose the Kubernetes API endpoint publicly (limited to cluster_endpoint_public_access_cidrs). Off: apply from inside the VPC (VPN, CI runner)."
  type        = bool
  default     = false
}

variable "cluster_endpoint_public_access_cidrs" {
  description = "Addresses allowed to reach the public API endpoint when it is on (office, VPN egress, CI)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.cluster_endpoint_public_access_cidrs : can(cidrhost(c, 0)) && !endswith(c, "/0")])
    error_message = "cluster_endpoint_public_access_cidrs must be CIDRs narrower than /0."
  }

  validation {
    condition     = !var.cluster_endpoint_public_access || length(var.cluster_endpoint_public_access_cidrs) > 0
    error_message = "a public API endpoint needs at least one cluster_endpoint_public_access_cidrs entry."
  }
}

variable "cluster_admin_principal_arns" {
  description = "IAM users or roles given cluster-admin through EKS access entries (the identity running apply already is)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.cluster_admin_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:(role|user)/", a))])
    error_message = "cluster_admin_principal_arns must be IAM role or user ARNs."
  }
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group: ingress, OCR, search replicas, Qdrant, MLflow, operators."
  type        = list(string)
  default     = ["m7i.2xlarge"]

  validation {
    condition     = length(var.cpu_instance_types) > 0
    error_message = "cpu_instance_types needs at least one instance type."
  }
}

variable "cpu_node_min_size" {
  description = "Fewest CPU nodes."
  type        = number
  default     = 3

  validation {
    condition     = var.cpu_node_min_size >= 1
    error_message = "cpu_node_min_size must be at least 1: system pods and Qdrant live there."
  }
}

variable "cpu_node_desired_size" {
  description = "CPU nodes at creation; later changes by the autoscaler are kept (ignore_changes)."
  type        = number
  default     = 3

  validation {
    condition     = var.cpu_node_desired_size >= var.cpu_node_min_size && var.cpu_node_desired_size <= var.cpu_node_max_size
    error_message = "cpu_node_desired_size must lie between cpu_node_min_size and cpu_node_max_size."
  }
}

variable "cpu_node_max_size" {
  description = "Most CPU nodes."
  type        = number
  default     = 10

  validation {
    condition     = var.cpu_node_max_size >= var.cpu_node_min_size && var.cpu_node_max_size <= 100
    error_message = "cpu_node_max_size must be at least cpu_node_min_size and at most 100."
  }
}

variable "cpu_node_disk_size_gib" {
  description = "Root volume of a CPU node, GiB (container images and Ray's object spill)."
  type        = number
  default     = 100

  validation {
    condition     = var.cpu_node_disk_size_gib >= 50 && var.cpu_node_disk_size_gib <= 2000
    error_message = "cpu_node_disk_size_gib must be between 50 and 2000."
  }
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (detector and embedder replicas); x86 NVIDIA types only."
  type        = list(string)
  default     = ["g6.xlarge"]

  validation {
    condition     = length(var.gpu_instance_types) > 0 && alltrue([for t in var.gpu_instance_types : can(regex("^(g4dn|g5|g6|g6e|gr6|p4d|p4de|p5|p5e|p5en)\\.", t))])
    error_message = "gpu_instance_types must be x86 NVIDIA GPU types (g4dn, g5, g6, g6e, gr6, p4d, p5 families)."
  }
}

variable "gpu_node_min_size" {
  description = "Fewest GPU nodes; 0 only with an autoscaler that can scale a tainted group up from zero."
  type        = number
  default     = 1

  validation {
    condition     = var.gpu_node_min_size >= 0
    error_message = "gpu_node_min_size must not be negative."
  }
}

variable "gpu_node_desired_size" {
  description = "GPU nodes at creation; later changes by the autoscaler are kept (ignore_changes)."
  type        = number
  default     = 2

  validation {
    condition     = var.gpu_node_desired_size >= var.gpu_node_min_size && var.gpu_node_desired_size <= var.gpu_node_max_size
    error_message = "gpu_node_desired_size must lie between gpu_node_min_size and gpu_node_max_size."
  }
}

variable "gpu_node_max_size" {
  description = "Most GPU nodes."
  type        = number
  default     = 4

  validation {
    condition     = var.gpu_node_max_size >= 1 && var.gpu_node_max_size >= var.gpu_node_min_size && var.gpu_node_max_size <= 50
    error_message = "gpu_node_max_size must be between max(1, gpu_node_min_size) and 50."
  }
}

variable "gpu_node_disk_size_gib" {
  description = "Root volume of a GPU node, GiB (CUDA images are several GiB each)."
  type        = number
  default     = 200

  validation {
    condition     = var.gpu_node_disk_size_gib >= 100 && var.gpu_node_disk_size_gib <= 2000
    error_message = "gpu_node_disk_size_gib must be between 100 and 2000."
  }
}

# --- storage ---------------------------------------------------------------------------------------

variable "s3_noncurrent_version_days" {
  description = "Days an overwritten or deleted object version is kept before it expires (undo window)."
  type        = number
  default     = 90

  validation {
    condition     = var.s3_noncurrent_version_days >= 1
    error_message = "s3_noncurrent_version_days must be at least 1."
  }
}

variable "log_retention_days" {
  description = "Days the control-plane logs, S3 access logs and VPC flow logs are kept."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a retention CloudWatch Logs accepts (30, 90, 365, ...)."
  }
}

# --- MLflow database -------------------------------------------------------------------------------

variable "db_instance_class" {
  description = "RDS instance class of the MLflow backend store."
  type        = string
  default     = "db.m7g.large"

  validation {
    condition     = startswith(var.db_instance_class, "db.")
    error_message = "db_instance_class must be an RDS class such as db.m7g.large."
  }
}

variable "db_engine_version" {
  description = "PostgreSQL major version; minor versions are upgraded by RDS in the maintenance window."
  type        = string
  default     = "17"

  validation {
    condition     = contains(["16", "17"], var.db_engine_version)
    error_message = "db_engine_version must be 16 or 17."
  }
}

variable "db_allocated_storage_gib" {
  description = "Initial database storage, GiB; grows by itself up to db_max_allocated_storage_gib."
  type        = number
  default     = 50

  validation {
    condition     = var.db_allocated_storage_gib >= 20 && var.db_allocated_storage_gib <= 65536
    error_message = "db_allocated_storage_gib must be between 20 and 65536."
  }
}

variable "db_max_allocated_storage_gib" {
  description = "Ceiling of database storage autoscaling, GiB."
  type        = number
  default     = 500

  validation {
    condition     = var.db_max_allocated_storage_gib >= var.db_allocated_storage_gib && var.db_max_allocated_storage_gib <= 65536
    error_message = "db_max_allocated_storage_gib must be at least db_allocated_storage_gib and at most 65536."
  }
}

variable "db_multi_az" {
  description = "Standby replica in a second zone: the registry survives a zone failure. dev turns it off."
  type        = bool
  default     = true
}

variable "db_deletion_protection" {
  description = "Refuse to delete the database (and take a final snapshot when it is deleted anyway). dev turns it off."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14

  validation {
    condition     = var.db_backup_retention_days >= 1 && var.db_backup_retention_days <= 35
    error_message = "db_backup_retention_days must be between 1 and 35."
  }
}

# --- Qdrant ----------------------------------------------------------------------------------------

variable "qdrant_replicas" {
  description = "Qdrant nodes (StatefulSet replicas)."
  type        = number
  default     = 3

  validation {
    condition     = var.qdrant_replicas >= 1 && var.qdrant_replicas <= 32
    error_message = "qdrant_replicas must be between 1 and 32."
  }

  validation {
    condition     = var.environment != "prod" || var.qdrant_replicas >= 3
    error_message = "prod needs at least 3 Qdrant nodes: Raft consensus keeps a majority through one node's loss."
  }
}

variable "qdrant_shards" {
  description = "Shards per collection version (VISEARCH_INDEX__SHARDS); a multiple of the node count lets Qdrant rebalance."
  type        = number
  default     = 6

  validation {
    condition     = var.qdrant_shards >= 1 && var.qdrant_shards <= 256
    error_message = "qdrant_shards must be between 1 and 256."
  }
}

variable "qdrant_replication_factor" {
  description = "Copies of each shard (VISEARCH_INDEX__REPLICATION_FACTOR); 2 survives a node."
  type        = number
  default     = 2

  validation {
    condition     = var.qdrant_replication_factor >= 1 && var.qdrant_replication_factor <= var.qdrant_replicas
    error_message = "qdrant_replication_factor must be between 1 and qdrant_replicas: two copies of a shard never share a node."
  }
}

variable "qdrant_storage_gib" {
  description = "Persistent volume per Qdrant node, GiB (docs/index.md: about 1.7 KB per product and replica, plus build headroom)."
  type        = number
  default     = 100

  validation {
    condition     = var.qdrant_storage_gib >= 10 && var.qdrant_storage_gib <= 16384
    error_message = "qdrant_storage_gib must be between 10 and 16384."
  }
}

variable "qdrant_resources" {
  description = "CPU and memory of one Qdrant node (Kubernetes quantities); memory is also its limit."
  type = object({
    cpu    = string
    memory = string
  })
  default = {
    cpu    = "2"
    memory = "8Gi"
  }

  validation {
    condition     = can(regex("^[0-9]+(\\.[0-9]+)?m?$", var.qdrant_resources.cpu)) && can(regex("^[0-9]+(Mi|Gi)$", var.qdrant_resources.memory))
    error_message = "qdrant_resources needs cpu like \"2\" or \"500m\" and memory like \"8Gi\"."
  }
}

# --- MLflow server ---------------------------------------------------------------------------------

variable "mlflow_image_tag" {
  description = "Tag of the burakince/mlflow image: the same MLflow version as the clients (.venv/bin/mlflow --version, mlflow/README.md)."
  type        = string
  default     = "3.17.2"

  validation {
    condition     = can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+$", var.mlflow_image_tag))
    error_message = "mlflow_image_tag must be an MLflow version such as 3.17.2."
  }
}

variable "mlflow_replicas" {
  description = "MLflow server replicas; they share the Postgres store and the bucket, so any number works."
  type        = number
  default     = 2

  validation {
    condition     = var.mlflow_replicas >= 1 && var.mlflow_replicas <= 10
    error_message = "mlflow_replicas must be between 1 and 10."
  }
}
