"""The drift simulation harness of benchmarks/drift.py: synthetic nights with known shifts."""
