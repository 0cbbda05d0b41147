"""Destinations for collected events: kafka, lake (Paimon), archive (raw JSONL), dead letters."""
