"""Ingest: new studies from Orthanc to pseudonymous, preprocessed views in the lake."""
