terraform {
  # 1.9: validation blocks may refer to other variables (node counts, Qdrant replicas).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    kubernetes = {
      source  = "hashicorp/kubernetes"
      version = "~> 2.36"
    }
    helm = {
      source  = "hashicorp/helm"
      version = "~> 3.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # The state holds the MLflow database password (rds.tf): keep it in a versioned, KMS-encrypted
  # bucket. Partial configuration, filled by `terraform init -backend-config=...` (docs/infra.md).
  backend "s3" {}
}
