"""The commented upbitpipe.yaml that `config init` writes, generated from the models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

from upbitpipe.config import ENV_PREFIX, SECTIONS, Settings

HEADER = """\
# upbitpipe configuration.
# Precedence, highest first: CLI flags > env UPBITPIPE_<SECTION>__<KEY> > this file > defaults.
# Secrets (keys, passwords) are better kept in the environment or an env file, e.g.
#   UPBITPIPE_S3__SECRET_KEY=... ; they are never logged and `config show` masks them.
"""


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    if isinstance(value, Path):
        value = str(value)
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_config_template() -> str:
    settings = Settings()
    lines = [HEADER]
    for section in SECTIONS:
        model: BaseModel = getattr(settings, section)
        doc = (type(model).__doc__ or "").strip().splitlines()
        lines.append("")
        if doc and doc[0]:
            lines.append(f"# {doc[0]}")
        lines.append(f"{section}:")
        for name in type(model).model_fields:
            value = getattr(model, name)
            env = f"{ENV_PREFIX}{section.upper()}__{name.upper()}"
            if isinstance(value, SecretStr) or (value is None and _is_secret(model, name)):
                lines.append(f"  # {name}: set it in the environment as {env}")
                continue
            lines.append(f"  {name}: {_yaml_scalar(value)}  # {env}")
    return "\n".join(lines) + "\n"


def _is_secret(model: BaseModel, name: str) -> bool:
    annotation = str(type(model).model_fields[name].annotation)
    return "SecretStr" in annotation
