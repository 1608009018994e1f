"""The embedded local stack: Orthanc, MLflow and Triton as supervised processes."""
