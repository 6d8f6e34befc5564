"""Reconciliation: what the destination registries hold, against the digest index (see runner.py)."""
