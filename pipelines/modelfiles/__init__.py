"""Model files: ONNX export, hashing and integrity, fetching a version's file, inference."""
