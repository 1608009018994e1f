"""Training: the view classifier of the model profile (demo or clinical), exam-level evaluation,
MLflow registration."""
