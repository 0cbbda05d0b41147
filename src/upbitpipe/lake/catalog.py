"""The one way to open the lake's Paimon catalog (writers, readers, stats, maintenance)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from upbitpipe.config import Settings, reveal
from upbitpipe.lake.tables import lake_catalog_options


def open_catalog(settings: Settings, *, create: bool = True) -> Any:
    """A pypaimon filesystem catalog on ``lake.warehouse`` (local path or ``s3://``).

    ``create``: make a missing local warehouse directory (writers); readers pass ``False`` so
    that a mistyped path is not silently turned into an empty lake.
    """
    options = lake_catalog_options(settings)
    if create and not settings.lake.is_s3:
        Path(options["warehouse"]).mkdir(parents=True, exist_ok=True)
    if settings.lake.is_s3:  # answer in seconds with the real cause; pypaimon retries for minutes
        from upbitpipe.storage.buckets import check_warehouse_bucket

        s3 = settings.s3
        check_warehouse_bucket(
            s3, settings.lake.warehouse, reveal(s3.access_key) or "", reveal(s3.secret_key) or ""
        )
    from pypaimon import CatalogFactory

    return CatalogFactory.create(options)
