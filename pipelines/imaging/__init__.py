"""Image handling shared by ingest, training and serving (one implementation, no skew)."""
