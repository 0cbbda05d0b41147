"""Upbit-compatible replay server, capture format, synthetic market."""
