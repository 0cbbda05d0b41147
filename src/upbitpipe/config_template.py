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


def _shown_default(value: Any) -> str:
    from upbitpipe.config import default_cache_dir, default_data_dir

    if isinstance(value, SecretStr) or value is None:
        return "—"
    if isinstance(value, Path):
        for root, label in (
            (default_data_dir(), "<user data dir>"),
            (default_cache_dir(), "<user cache dir>"),
        ):
            if value == root or root in value.parents:
                return f"`{label}/{value.relative_to(root)}`".replace("/.`", "`")
        return f"`{value}`"
    if isinstance(value, list):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{value}`"


def render_config_reference() -> str:
    """docs/configuration.md: every key, its default and its environment variable."""
    settings = Settings()
    lines = [
        "# Configuration reference",
        "",
        "Generated from `src/upbitpipe/config.py` by `python -m upbitpipe.config_template`;",
        "a test fails when it is out of date. Precedence: CLI flags > environment > YAML > defaults.",
        "Lists may be given as YAML lists or comma-separated strings; secrets have no default",
        "and belong in the environment.",
    ]
    for section in SECTIONS:
        model: BaseModel = getattr(settings, section)
        doc = (type(model).__doc__ or "").strip().splitlines()
        lines += ["", f"## `{section}`", ""]
        if doc and doc[0]:
            lines += [doc[0], ""]
        lines += ["| key | default | environment |", "|---|---|---|"]
        for name in type(model).model_fields:
            secret = _is_secret(model, name)
            default = "secret, no default" if secret else _shown_default(getattr(model, name))
            env = f"`{ENV_PREFIX}{section.upper()}__{name.upper()}`"
            lines.append(f"| `{section}.{name}` | {default} | {env} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render_config_reference(), end="")
