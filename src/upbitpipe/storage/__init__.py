"""Object storage helpers: buckets on MinIO / any S3-compatible server."""
