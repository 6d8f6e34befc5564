"""Audits every change to the Kubernetes production registries against the k8s.io promotion manifests."""
