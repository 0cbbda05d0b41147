"""What can go wrong in `upbitpipe sql`, each as one line the user can act on."""

from __future__ import annotations

from upbitpipe.errors import UpbitpipeError


class QueryError(UpbitpipeError):
    """ClickHouse refused a statement (syntax, unknown column, bad types, ...)."""


class UnknownTableError(QueryError):
    """The statement names a table the lake does not have."""


class LakeMissingError(UpbitpipeError):
    """``lake.warehouse`` points at nothing (no directory, no bucket)."""


class LakeEmptyError(UpbitpipeError):
    """The warehouse exists but holds no table of ``lake.database``."""


class ChartError(UpbitpipeError):
    """A result cannot be drawn, or the plotting library for the file type is missing."""
