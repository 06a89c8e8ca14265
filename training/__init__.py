"""Offline jobs: each trains one model on WB-Synth, logs an MLflow run and registers a version."""
