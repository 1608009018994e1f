"""Every Asset that crosses a DAG boundary. URIs name data products, never patients."""

from __future__ import annotations

from airflow.sdk import Asset

VALIDATED_MAMMO_DATASET = Asset(name="validated_mammo_dataset", uri="radflow://lake/mammo/manifest")
CHALLENGER_MAMMO_MODEL = Asset(name="challenger_mammo_model", uri="radflow://models/mammo-screening/challenger")
CHAMPION_MAMMO_MODEL = Asset(name="champion_mammo_model", uri="radflow://models/mammo-screening/champion")
# Emitted by monitoring (monitor_mammo_model) when drift is sustained: retraining starts.
MAMMO_DATA_DRIFT = Asset(name="mammo_data_drift", uri="radflow://monitoring/mammo-screening/drift")
