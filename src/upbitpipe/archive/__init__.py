"""The raw-frame archive after capture: shipping finished files to the archive bucket."""
