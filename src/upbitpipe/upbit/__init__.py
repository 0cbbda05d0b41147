"""Upbit wire protocol: request frames, DEFAULT/SIMPLE parsing, the REST client."""
