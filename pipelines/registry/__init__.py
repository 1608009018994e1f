"""The MLflow model registry: lineage tags, aliases, promotion with an audit trail."""
