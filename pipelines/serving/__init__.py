"""Serving: ONNX export, the Triton model repository, deploys and the Triton client."""
