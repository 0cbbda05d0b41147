"""Flink SQL: templates, rendering, statement splitting, submission and job control."""
