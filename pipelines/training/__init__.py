"""Training: a small CNN per view, exam-level evaluation, MLflow registration."""
