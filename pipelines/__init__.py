"""radflow: the open MLOps plumbing between a hospital PACS and its imaging models."""

__version__ = "0.1.0"
