"""Datasets: frozen, patient-split, DVC-versioned snapshots of the validated manifest."""
