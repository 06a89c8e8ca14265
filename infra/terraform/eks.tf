# The cluster writes its control-plane logs here; created first so its retention and key apply
# from the first line (EKS would otherwise create the group itself, unencrypted, kept forever).
resource "aws_cloudwatch_log_group" "eks" {
  name              = "/aws/eks/${local.name}/cluster"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_eks_cluster" "this" {
  name     = local.name
  version  = var.kubernetes_version
  role_arn = aws_iam_role.cluster.arn

  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = [for s in aws_subnet.private : s.id]
    endpoint_private_access = true
    endpoint_public_access  = var.cluster_endpoint_public_access
    public_access_cidrs     = var.cluster_endpoint_public_access ? var.cluster_endpoint_public_access_cidrs : null
  }

  # Access entries instead of the aws-auth ConfigMap: who may administer the cluster is an AWS API
  # resource (below), reviewed in Terraform, not a YAML edit inside the cluster.
  access_config {
    authentication_mode                         = "API"
    bootstrap_cluster_creator_admin_permissions = true
  }

  encryption_config {
    resources = ["secrets"]

    provider {
      key_arn = aws_kms_key.this.arn
    }
  }

  # Standard support only: extended support costs six times as much per cluster-hour.
  upgrade_policy {
    support_type = "STANDARD"
  }

  depends_on = [
    aws_iam_role_policy_attachment.cluster,
    aws_iam_role_policy.cluster_encryption,
    aws_cloudwatch_log_group.eks,
  ]
}

resource "aws_eks_access_entry" "admin" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = each.value
}

resource "aws_eks_access_policy_association" "admin" {
  for_each = toset(var.cluster_admin_principal_arns)

  cluster_name  = aws_eks_cluster.this.name
  principal_arn = aws_eks_access_entry.admin[each.key].principal_arn
  policy_arn    = "arn:${local.partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"

  access_scope {
    type = "cluster"
  }
}

# --- nodes -----------------------------------------------------------------------------------------

# Launch templates only for what node groups cannot say themselves: IMDSv2 with a hop limit of 1
# (pods reach AWS through IRSA, never through the node's role) and an encrypted gp3 root volume.
resource "aws_launch_template" "node" {
  for_each = {
    cpu = var.cpu_node_disk_size_gib
    gpu = var.gpu_node_disk_size_gib
  }

  name_prefix            = "${local.name}-${each.key}-"
  update_default_version = true

  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }

  block_device_mappings {
    device_name = "/dev/xvda"

    ebs {
      volume_size           = each.value
      volume_type           = "gp3"
      encrypted             = true
      delete_on_termination = true
    }
  }

  tag_specifications {
    resource_type = "instance"
    tags          = { Name = "${local.name}-${each.key}" }
  }
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "cpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = [for s in aws_subnet.private : s.id]

  ami_type       = "AL2023_x86_64_STANDARD"
  capacity_type  = "ON_DEMAND"
  instance_types = var.cpu_instance_types

  scaling_config {
    min_size     = var.cpu_node_min_size
    desired_size = var.cpu_node_desired_size
    max_size     = var.cpu_node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["cpu"].id
    version = aws_launch_template.node["cpu"].latest_version
  }

  labels = {
    "visearch.io/pool" = "cpu"
  }

  # The cluster autoscaler owns the node count once the group exists.
  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# GPU nodes are tainted so that only pods asking for a GPU (and tolerating the taint: the
# detector and embedder Ray workers, the NVIDIA device plugin) land on them; everything else stays
# on the cheaper CPU group. The nvidia.com/gpu.present label is what the device plugin's chart
# selects nodes by when Node Feature Discovery is not installed.
resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "gpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = [for s in aws_subnet.private : s.id]

  ami_type       = "AL2023_x86_64_NVIDIA" # NVIDIA driver and container toolkit preinstalled
  capacity_type  = "ON_DEMAND"
  instance_types = var.gpu_instance_types

  scaling_config {
    min_size     = var.gpu_node_min_size
    desired_size = var.gpu_node_desired_size
    max_size     = var.gpu_node_max_size
  }

  update_config {
    max_unavailable = 1
  }

  launch_template {
    id      = aws_launch_template.node["gpu"].id
    version = aws_launch_template.node["gpu"].latest_version
  }

  labels = {
    "visearch.io/pool"       = "gpu"
    "nvidia.com/gpu.present" = "true"
  }

  taint {
    key    = "nvidia.com/gpu"
    value  = "true"
    effect = "NO_SCHEDULE"
  }

  lifecycle {
    ignore_changes = [scaling_config[0].desired_size]
  }

  depends_on = [aws_iam_role_policy_attachment.node]
}

# --- add-ons ---------------------------------------------------------------------------------------

# Managed add-ons, so that EKS upgrades them with the control plane. The EBS CSI driver is what
# provisions Qdrant's persistent volumes (kubernetes.tf: the gp3 storage class).
resource "aws_eks_addon" "this" {
  for_each = {
    vpc-cni            = { role_arn = null }
    kube-proxy         = { role_arn = null }
    coredns            = { role_arn = null }
    aws-ebs-csi-driver = { role_arn = aws_iam_role.irsa["ebs"].arn }
  }

  cluster_name                = aws_eks_cluster.this.name
  addon_name                  = each.key
  service_account_role_arn    = each.value.role_arn
  resolve_conflicts_on_create = "OVERWRITE"
  resolve_conflicts_on_update = "PRESERVE"

  # coredns and the CSI controller are Deployments: they need nodes to become healthy.
  depends_on = [aws_eks_node_group.cpu]
}
