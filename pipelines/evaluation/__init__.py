"""`radflow evaluate`: a registered model on a frozen dataset split, logged to MLflow."""
