"""Evaluation: retrieval metrics, baselines and plots."""
