"""One home for S3 credentials: configured keys, else the keys `infra up minio` generated.

Every command resolves the keys once, when the CLI context loads the config
(:func:`with_local_s3_keys`); after that ``settings.s3`` carries them.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import SecretStr

from upbitpipe.config import LoadedSettings, S3Settings, reveal
from upbitpipe.errors import ConfigError


@dataclass(frozen=True)
class S3Credentials:
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # never print the secret
        return f"S3Credentials(access_key={self.access_key!r}, secret_key='**********')"


def credentials_file(state_dir: Path) -> Path:
    return state_dir / "s3" / "credentials.json"


def local_credentials(s3: S3Settings, state_dir: Path, *, create: bool) -> S3Credentials | None:
    """Keys from config, else the per-state-dir generated pair (created when ``create``)."""
    access, secret = reveal(s3.access_key), reveal(s3.secret_key)
    if access and secret:
        return S3Credentials(access, secret)
    if bool(access) != bool(secret):
        msg = "s3.access_key and s3.secret_key must be set together"
        raise ConfigError(msg)
    path = credentials_file(state_dir)
    if path.is_file():
        data = json.loads(path.read_text(encoding="utf-8"))
        return S3Credentials(str(data["access_key"]), str(data["secret_key"]))
    if not create:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    creds = S3Credentials("upbitpipe-" + secrets.token_hex(6), secrets.token_urlsafe(30))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump({"access_key": creds.access_key, "secret_key": creds.secret_key}, fh)
    return creds


def keys_origin(s3: S3Settings, state_dir: Path) -> str:
    """Where the S3 keys in use come from: the generated file, or the config."""
    path = credentials_file(state_dir)
    if path.is_file():
        generated = json.loads(path.read_text(encoding="utf-8")).get("access_key")
        if s3.access_key is None or reveal(s3.access_key) == generated:
            return f"{path} (mode 0600)"
    return "config"


def with_local_s3_keys(loaded: LoadedSettings) -> LoadedSettings:
    """Fill unset ``s3.access_key``/``s3.secret_key`` with the keys `infra up minio`
    generated for this state dir, so every command (collect, flink submit, stats, ...) talks
    to the local server without the user copying keys around. Keys set anywhere win."""
    s3 = loaded.settings.s3
    if s3.access_key is not None or s3.secret_key is not None:
        return loaded
    path = credentials_file(loaded.settings.infra.state_dir)
    if not path.is_file():
        return loaded
    creds = local_credentials(s3, loaded.settings.infra.state_dir, create=False)
    if creds is None:
        return loaded
    filled = s3.model_copy(
        update={
            "access_key": SecretStr(creds.access_key),
            "secret_key": SecretStr(creds.secret_key),
        }
    )
    origin = f"local server keys {path}"
    sources = {**loaded.sources, "s3.access_key": origin, "s3.secret_key": origin}
    return replace(
        loaded, settings=loaded.settings.model_copy(update={"s3": filled}), sources=sources
    )
