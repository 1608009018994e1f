"""Monitoring: data and prediction drift, artifact rates, model-file integrity, alerts."""
