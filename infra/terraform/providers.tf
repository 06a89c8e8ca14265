provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project     = "visearch"
      Environment = var.environment
      ManagedBy   = "terraform"
    })
  }
}

# Both talk to the cluster created here. `aws eks get-token` at each call, not a token read at
# plan time: a token lives 15 minutes and a first apply (cluster, nodes, charts) takes longer.
provider "kubernetes" {
  host                   = aws_eks_cluster.this.endpoint
  cluster_ca_certificate = base64decode(aws_eks_cluster.this.certificate_authority[0].data)

  exec {
    api_version = "client.authentication.k8s.io/v1beta1"
    command     = "aws"
    args        = ["eks", "get-token", "--cluster-name", aws_eks_cluster.this.name, "--region", var.region]
  }
}

provider "helm" {
  kubernetes = {
    host                   = aws_eks_cluster.this.endpoint
    cluster_ca_certificate = base64decode(aws_eks_cluster.this.certificate_authority[0].data)

    exec = {
      api_version = "client.authentication.k8s.io/v1beta1"
      command     = "aws"
      args        = ["eks", "get-token", "--cluster-name", aws_eks_cluster.this.name, "--region", var.region]
    }
  }
}
