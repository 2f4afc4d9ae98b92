"""Evaluation tasks, one module per task family."""
