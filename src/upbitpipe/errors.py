"""Domain exceptions. The core raises these; only the CLI turns them into exit codes."""

from __future__ import annotations


class UpbitpipeError(Exception):
    """Base of every error a user can act on; its message is one readable line."""


class ConfigError(UpbitpipeError):
    """A setting is missing or has a bad value."""


class ServiceUnavailableError(UpbitpipeError):
    """A service (Kafka, S3, Flink, ClickHouse, the exchange) cannot be reached."""


class AuthError(UpbitpipeError):
    """Credentials were refused."""


class UnknownMarketError(UpbitpipeError):
    """A market code that the exchange does not list."""


class ArtifactError(UpbitpipeError):
    """A pinned artifact could not be fetched or failed its checksum."""


class StateFileError(UpbitpipeError):
    """A file or directory under the collector's state dir has the wrong type or shape."""


class CollectorStoppedError(UpbitpipeError):
    """A part of the collector stopped on an unexpected error (a bug): the collector shut
    down cleanly around it, and the next start resumes from the saved point."""
