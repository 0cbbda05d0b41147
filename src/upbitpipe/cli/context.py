"""What every command needs from the root options: how to load the one config."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from upbitpipe.config import LoadedSettings, Settings, load_settings
from upbitpipe.errors import UpbitpipeError

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


@dataclass
class CliContext:
    config_file: Path | None = None

    def load(self, overrides: Mapping[str, Any] | None = None) -> LoadedSettings:
        """Effective settings with CLI flags on top; a bad value exits 2 with one line."""
        from upbitpipe.storage.credentials import with_local_s3_keys

        try:
            return with_local_s3_keys(load_settings(self.config_file, overrides))
        except UpbitpipeError as exc:
            fail(f"config: {exc}", code=2)

    def settings(self, overrides: Mapping[str, Any] | None = None) -> Settings:
        return self.load(overrides).settings


def cli_context(ctx: typer.Context) -> CliContext:
    obj = ctx.find_root().obj
    if isinstance(obj, CliContext):
        return obj
    fresh = CliContext()
    ctx.find_root().obj = fresh
    return fresh


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``[error] message`` without a traceback and exit with ``code``."""
    err_console.print(f"[bold red]error[/]: {escape(message)}", markup=True, highlight=False)
    raise typer.Exit(code) from None
