"""Local services: pinned artifacts, native process starters, docker compose."""
