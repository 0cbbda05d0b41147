"""Every config key is read by code: a documented key that nothing reads is a lie to the user.

A key ``section.name`` counts as read when a module accesses ``.name`` on an object that is
visibly that section: the expression names the section (``settings.kafka.linger_ms``,
``self.kafka.linger_ms``, ``kafka.linger_ms``) or the module refers to the section's model
class (a function taking ``KafkaSettings``). Properties defined in ``config.py`` that other
modules read count through the keys they use (``self.name`` there). Found in the AST.
"""

from __future__ import annotations

import ast
from pathlib import Path

from pydantic import BaseModel

import upbitpipe
from upbitpipe.config import Settings

SRC = Path(upbitpipe.__file__).parent


def _keys_read(keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    model_of: dict[str, str] = {
        section: field.annotation.__name__  # type: ignore[union-attr]
        for section, field in Settings.model_fields.items()
    }
    read: set[tuple[str, str]] = set()
    for path in SRC.rglob("*.py"):
        in_config = path.name == "config.py" and path.parent == SRC
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names_used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        aliases: dict[str, str] = {}  # cfg = settings.collector -> {"cfg": "collector"}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Assign):
                continue
            for target in node.targets:
                pairs = (
                    zip(target.elts, node.value.elts, strict=False)
                    if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple)
                    else [(target, node.value)]
                )
                for name, value in pairs:
                    if (
                        isinstance(name, ast.Name)
                        and isinstance(value, ast.Attribute)
                        and value.attr in model_of
                    ):
                        aliases[name.id] = value.attr
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            owner = ast.unparse(node.value)
            for section, name in keys:
                if node.attr != name:
                    continue
                if in_config:
                    if owner == "self":
                        read.add((section, name))
                elif (
                    section in owner
                    or aliases.get(owner) == section
                    or model_of[section] in names_used
                ):
                    read.add((section, name))
    return read


def _config_keys() -> list[tuple[str, str]]:
    keys = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel), section
        keys.extend((section, name) for name in model.model_fields)
    return keys


def test_config_has_keys() -> None:
    keys = _config_keys()
    assert ("kafka", "bootstrap_servers") in keys
    assert len(keys) > 50


def test_every_config_key_is_read_outside_config_py() -> None:
    keys = _config_keys()
    read = _keys_read(keys)
    unread = [f"{section}.{name}" for section, name in keys if (section, name) not in read]
    assert unread == [], f"config keys nothing reads (use them or remove them): {unread}"
