"""Kubernetes side of cryptolake: pinned tools, kubeconform schemas, and the chart file generated from the settings."""
