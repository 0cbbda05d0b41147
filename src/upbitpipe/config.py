"""The one typed configuration of upbitpipe.

Sources, highest first: CLI flags -> environment ``UPBITPIPE_<SECTION>__<KEY>`` -> YAML file
(``--config``, ``$UPBITPIPE_CONFIG``, ``./upbitpipe.yaml``, user config dir) -> defaults.

Every section is its own model with ``extra="forbid"`` so a typo in a key is an error, not a
silent default. Secrets are ``SecretStr``: they print as ``**********`` and are only revealed
where a client needs them (:func:`reveal`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from platformdirs import user_cache_dir, user_config_dir, user_data_dir
from pydantic import (
    AnyHttpUrl,
    AnyUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

from upbitpipe.errors import ConfigError

APP_NAME = "upbitpipe"
ENV_PREFIX = "UPBITPIPE_"
ENV_CONFIG_FILE = "UPBITPIPE_CONFIG"
ENV_PURE_PYTHON = "UPBITPIPE_PURE_PYTHON"  # the build's switch (setup.py), not a setting

MARKET_RE = re.compile(r"^[A-Z0-9]{2,10}-[A-Z0-9]{1,20}$")
MARKET_SELECTORS = ("all", "all-krw", "all-btc", "all-usdt")
EVENT_TYPES = ("ticker", "trade", "orderbook")
SINK_NAMES = ("lake", "kafka", "archive")

EventType = Literal["ticker", "trade", "orderbook"]
SinkName = Literal["lake", "kafka", "archive"]


def default_data_dir() -> Path:
    return Path(user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    return Path(user_cache_dir(APP_NAME, appauthor=False))


def _split_csv(value: Any) -> Any:
    """Accept ``"a,b"`` as well as ``["a", "b"]`` (env vars and CLI flags are strings)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]


class Section(BaseModel):
    # allow_inf_nan=False: "inf" and "nan" are refused for every float, with the key named
    model_config = ConfigDict(
        extra="forbid", validate_assignment=True, frozen=False, allow_inf_nan=False
    )


DAY_SECONDS = 86_400.0  # upper bound of every interval/timeout: finite, and fits an int in ms
MIN_RATE = 0.001  # per second


def _path_not_empty(value: Any) -> Any:
    """An empty path would silently mean the current directory."""
    if isinstance(value, str) and not value.strip():
        msg = "must not be empty (an empty path would mean the current directory)"
        raise ValueError(msg)
    return value


WAREHOUSE_SCHEMES = ("s3", "s3a", "file")


def check_warehouse(value: str) -> str:
    """A local path, ``file://``, or ``s3://bucket/path`` / ``s3a://``; nothing else."""
    text = value.strip()
    if not text:
        msg = (
            "must not be empty: a path or s3://bucket/path (empty would mean the current directory)"
        )
        raise ValueError(msg)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    if scheme.lower() not in WAREHOUSE_SCHEMES:
        msg = f"scheme {scheme}:// is not supported (use a local path, file://, s3:// or s3a://)"
        raise ValueError(msg)
    if scheme.lower() in ("s3", "s3a") and not rest.split("/", 1)[0]:
        msg = f"{text!r} names no bucket (use {scheme}://bucket/path)"
        raise ValueError(msg)
    if scheme.lower() == "file" and not rest.strip("/"):
        msg = f"{text!r} names no directory"
        raise ValueError(msg)
    return text


class UpbitSettings(Section):
    """Where the exchange (or ``upbitpipe replay serve``) is, and its limits."""

    websocket_url: AnyUrl = AnyUrl("wss://api.upbit.com/websocket/v1")
    rest_url: AnyHttpUrl = AnyHttpUrl("https://api.upbit.com")
    format: Literal["DEFAULT", "SIMPLE"] = "DEFAULT"
    orderbook_depth: Literal[1, 5, 15, 30] = 30
    codes_per_connection: int = Field(default=50, ge=1, le=500)
    # a rate below MIN_RATE (one call per ~17 minutes) would stall reconnects or backfills
    connect_per_second: float = Field(default=5.0, ge=MIN_RATE)
    rest_per_second: float = Field(default=10.0, ge=MIN_RATE)
    ping_interval_seconds: float = Field(default=10.0, gt=0, le=DAY_SECONDS)
    silence_timeout_seconds: float = Field(default=30.0, gt=0, le=DAY_SECONDS)
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=DAY_SECONDS)
    # the WebSocket library: picows (C frame parser, about half the CPU per message) or
    # websockets (pure-Python fallback); both keep the same keepalive, watchdog and backoff
    transport: Literal["picows", "websockets"] = "picows"

    @field_validator("websocket_url")
    @classmethod
    def _ws_scheme(cls, value: AnyUrl) -> AnyUrl:
        if value.scheme not in ("ws", "wss"):
            msg = f"must start with ws:// or wss://, got {value.scheme}://"
            raise ValueError(msg)
        return value


class CollectorSettings(Section):
    """What to collect, where to, and how hard to try."""

    markets: CsvList = Field(default_factory=lambda: ["KRW-BTC"])
    types: Annotated[list[EventType], NoDecode] = Field(
        default_factory=lambda: list[EventType](["ticker", "trade", "orderbook"])
    )
    sinks: Annotated[list[SinkName], NoDecode] = Field(
        default_factory=lambda: list[SinkName](["lake"])
    )
    state_dir: Path = Field(default_factory=lambda: default_data_dir() / "collector")
    archive_dir: Path | None = None
    instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,64}$")
    backfill: bool = True
    reconnect_initial_delay_seconds: float = Field(default=1.0, gt=0, le=DAY_SECONDS)
    reconnect_max_delay_seconds: float = Field(default=60.0, gt=0, le=DAY_SECONDS)
    # events buffered per sink, then backpressure (the bound is what keeps memory bounded)
    queue_size: int = Field(default=20_000, ge=1, le=10_000_000)
    queue_max_bytes: int = Field(default=8 * 1024 * 1024, ge=65_536)  # frame bytes, likewise
    dedup_window: int = Field(default=200_000, ge=1000)
    shutdown_timeout_seconds: float = Field(default=15.0, gt=0, le=DAY_SECONDS)
    status_interval_seconds: float = Field(default=2.0, gt=0, le=DAY_SECONDS)
    # the event loop `collect` runs on: asyncio's own, or uvloop (libuv; needs the uvloop
    # package, `pip install uvloop`)
    event_loop: Literal["asyncio", "uvloop"] = "asyncio"

    _split = field_validator("markets", "types", "sinks", mode="before")(_split_csv)
    _paths = field_validator("state_dir", "archive_dir", mode="before")(_path_not_empty)

    @field_validator("markets")
    @classmethod
    def _markets_shape(cls, value: list[str]) -> list[str]:
        if not value:
            msg = "needs at least one market, e.g. KRW-BTC"
            raise ValueError(msg)
        out: list[str] = []
        for raw in value:
            code = raw.strip()
            lowered = code.lower()
            if lowered in MARKET_SELECTORS:
                out.append(lowered)
                continue
            code = code.upper()
            if not MARKET_RE.match(code):
                msg = f"{raw!r} is not a market code like KRW-BTC (or one of {', '.join(MARKET_SELECTORS)})"
                raise ValueError(msg)
            out.append(code)
        return list(dict.fromkeys(out))

    @field_validator("types", "sinks")
    @classmethod
    def _non_empty_unique(cls, value: list[str]) -> list[str]:
        if not value:
            msg = "must name at least one"
            raise ValueError(msg)
        return list(dict.fromkeys(value))

    @property
    def effective_instance_id(self) -> str:
        """``instance_id`` or, unset, host-pid (stamped on every event as ``_collector``)."""
        return self.instance_id or f"{os.uname().nodename}-{os.getpid()}"

    @property
    def effective_archive_dir(self) -> Path:
        return self.archive_dir or self.state_dir / "archive"


class KafkaSettings(Section):
    bootstrap_servers: CsvList = Field(
        default_factory=lambda: ["localhost:29092", "localhost:29093", "localhost:29094"]
    )
    topic_prefix: str = Field(default="upbit-", pattern=r"^[A-Za-z0-9._-]*$")
    partitions: int = Field(default=3, ge=1)
    replication_factor: int = Field(default=3, ge=1)
    min_insync_replicas: int = Field(default=2, ge=1)
    # zstd: aiokafka's lz4 is LZ4 HC at level 9 (~11 µs per record vs ~1 for zstd, which
    # also packs 3x tighter; the sink compresses at level 1: sinks/kafka_codec.py); every
    # reader (brokers, Flink, ClickHouse) decodes it
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "zstd"
    # the sink's batching: after a commit, records gather until this long after that
    # transaction began, so one transaction carries them (fewer, larger transactions at low
    # rates; adds at most this much to a record's latency; no wait at rates that fill it)
    linger_ms: int = Field(default=10, ge=0)
    max_batch_bytes: int = Field(default=1_048_576, ge=1024)
    request_timeout_ms: int = Field(default=30_000, ge=1000)
    spool_max_bytes: int = Field(default=1_073_741_824, ge=1_048_576)
    # the producer's transactional.id; empty: one generated per collector state dir and kept
    # there, so a restart fences its dead predecessor and two collectors never fence each other
    transactional_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,200}$")
    # read_committed consumers stall behind an open transaction of a dead producer until it
    # times out (or the collector restarts and fences it): keep it short
    transaction_timeout_ms: int = Field(default=60_000, ge=1000, le=900_000)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None

    _split = field_validator("bootstrap_servers", mode="before")(_split_csv)

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_port(cls, value: list[str]) -> list[str]:
        if not value:
            msg = "needs at least one host:port"
            raise ValueError(msg)
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                msg = f"{server!r} is not host:port"
                raise ValueError(msg)
        return value

    def topic(self, event_type: str) -> str:
        return f"{self.topic_prefix}{event_type}"


class LakeSettings(Section):
    warehouse: str = "./data/lake"
    database: str = Field(default="upbit", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    timezone: str = "UTC"
    commit_rows: int = Field(default=50_000, ge=1)
    commit_interval_seconds: float = Field(default=5.0, gt=0, le=DAY_SECONDS)
    buckets: int = Field(default=1, ge=1)  # per partition; raise it for Flink on a cluster

    _warehouse = field_validator("warehouse")(check_warehouse)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            msg = f"unknown time zone {value!r}"
            raise ValueError(msg) from None
        return value

    @property
    def is_s3(self) -> bool:
        return self.warehouse.startswith(("s3://", "s3a://"))


class S3Settings(Section):
    endpoint: AnyHttpUrl = AnyHttpUrl("http://localhost:9000")
    region: str = "us-east-1"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    path_style: bool = True
    warehouse_bucket: str = Field(
        default="upbit-lake", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    archive_bucket: str = Field(
        default="upbit-archive", pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
    )
    versioning: bool = False
    archive_expire_days: int | None = Field(default=None, ge=1)


class FlinkSettings(Section):
    rest_url: AnyHttpUrl = AnyHttpUrl("http://localhost:8081")
    parallelism: int = Field(default=3, ge=1)
    taskmanagers: int = Field(default=2, ge=1)
    slots_per_taskmanager: int = Field(default=2, ge=1)
    checkpoint_interval: str = Field(default="30 s", pattern=r"^\d+\s*(ms|s|min|h)$")
    checkpoint_dir: str | None = None
    restart_strategy: Literal["exponential-delay", "fixed-delay", "none"] = "exponential-delay"
    watermark_delay_seconds: int = Field(default=5, ge=0)
    # how late a trade may arrive and still fix its candle: the collector backfills up to 7 d
    state_ttl: str = Field(default="7 d", pattern=r"^\d+\s*(s|min|h|d)$")
    consumer_group: str = "upbitpipe-flink"
    sql_dir: Path | None = None

    _paths = field_validator("sql_dir", mode="before")(_path_not_empty)


class ClickHouseSettings(Section):
    """ClickHouse (native protocol). The local cluster publishes it on 19000: 9000 is S3's."""

    host: str = "localhost"
    port: int = Field(default=19000, ge=1, le=65535)
    user: str = "default"
    password: SecretStr | None = None
    database: str = Field(default="upbit", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    cluster: str = "upbit_cluster"
    ttl_days: int = Field(default=7, ge=1)
    consumer_group: str = "upbitpipe-clickhouse"
    kafka_bootstrap_servers: Annotated[list[str], NoDecode] | None = None
    secure: bool = False

    _split = field_validator("kafka_bootstrap_servers", mode="before")(_split_csv)


class GrafanaSettings(Section):
    url: AnyHttpUrl = AnyHttpUrl("http://localhost:3000")


class InfraSettings(Section):
    runtime: Literal["native", "docker", "auto"] = "auto"
    state_dir: Path = Field(default_factory=lambda: default_data_dir() / "infra")
    cache_dir: Path = Field(default_factory=default_cache_dir)
    kafka_brokers: int = Field(default=3, ge=1, le=9)
    s3_nodes: Literal[1, 4] = 1
    bind_host: str = "127.0.0.1"
    start_timeout_seconds: float = Field(default=120.0, gt=0, le=DAY_SECONDS)

    _paths = field_validator("state_dir", "cache_dir", mode="before")(_path_not_empty)


class MetricsSettings(Section):
    enabled: bool = True
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=9464, ge=0, le=65535)


class Settings(BaseSettings):
    """The whole configuration. Build it with :func:`load_settings`, then pass sections down."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    upbit: UpbitSettings = Field(default_factory=UpbitSettings)
    collector: CollectorSettings = Field(default_factory=CollectorSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    lake: LakeSettings = Field(default_factory=LakeSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    grafana: GrafanaSettings = Field(default_factory=GrafanaSettings)
    infra: InfraSettings = Field(default_factory=InfraSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)


SECTIONS: tuple[str, ...] = tuple(Settings.model_fields)


@dataclass(frozen=True)
class LoadedSettings:
    """Settings plus where each value came from (``config show`` prints both)."""

    settings: Settings
    sources: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None

    def source_of(self, dotted_key: str) -> str:
        return self.sources.get(dotted_key, "default")


def reveal(secret: SecretStr | None) -> str | None:
    """The plain value of a secret, for handing to a client library - never for printing."""
    return secret.get_secret_value() if secret is not None else None


def find_config_file(explicit: Path | None, env: Mapping[str, str]) -> Path | None:
    """The YAML file to read: ``--config`` > ``$UPBITPIPE_CONFIG`` > ./upbitpipe.yaml > user dir."""
    if explicit is not None:
        if not explicit.is_file():
            msg = f"config file {explicit} does not exist"
            raise ConfigError(msg)
        return explicit
    from_env = env.get(ENV_CONFIG_FILE)
    if from_env:
        path = Path(from_env)
        if not path.is_file():
            msg = f"config file {path} (from ${ENV_CONFIG_FILE}) does not exist"
            raise ConfigError(msg)
        return path
    for candidate in (Path("upbitpipe.yaml"), Path(user_config_dir(APP_NAME)) / "upbitpipe.yaml"):
        if candidate.is_file():
            return candidate
    return None


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a key given twice in one mapping (YAML itself lets the
    last one win silently, so a forgotten duplicate would override the setting above it)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)  # type: ignore[no-untyped-call]
        if key in seen:
            msg = f"key {key!r} is given twice"
            raise yaml.constructor.ConstructorError(None, None, msg, key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _unique_mapping,  # type: ignore[arg-type]
)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        msg = f"{path}: not UTF-8 text (byte {exc.start}); save the config file as UTF-8"
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = f"{path}: cannot read the config file ({exc.strerror or exc})"
        raise ConfigError(msg) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        msg = f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        raise ConfigError(msg) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        msg = f"{path}: top level must be a mapping of sections ({', '.join(SECTIONS)})"
        raise ConfigError(msg)
    return data


def _env_layer(env: Mapping[str, str]) -> dict[str, Any]:
    """Environment values as nested dicts, parsed by pydantic-settings' own env source."""
    source = EnvSettingsSource(
        Settings,
        case_sensitive=False,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
    )
    # EnvSettingsSource reads os.environ; give it the mapping we were handed instead.
    source.env_vars = {k.lower(): v for k, v in env.items()}
    layer = source()
    unknown = sorted(
        k
        for k in env
        if k.upper().startswith(ENV_PREFIX)
        and k.upper() not in (ENV_CONFIG_FILE, ENV_PURE_PYTHON)
        and k.upper()[len(ENV_PREFIX) :].split("__", 1)[0].lower() not in SECTIONS
    )
    if unknown:
        msg = f"{unknown[0]}: unknown environment setting (sections: {', '.join(SECTIONS)})"
        raise ConfigError(msg)
    whole = sorted(
        k
        for k in env
        if k.upper().startswith(ENV_PREFIX) and k.upper()[len(ENV_PREFIX) :].lower() in SECTIONS
    )
    if whole:  # UPBITPIPE_COLLECTOR='{"markets": ...}' would be ignored silently
        example = f"{whole[0].upper()}__<KEY>"
        msg = f"{whole[0]}: set one key per variable, e.g. {example}"
        raise ConfigError(msg)
    return layer


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and not prefix:
            out.update(_flatten(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for dotted, value in flat.items():
        section, _, key = dotted.partition(".")
        if not key:
            msg = f"{dotted}: use SECTION.KEY, e.g. collector.markets"
            raise ConfigError(msg)
        nested.setdefault(section, {})[key] = value
    return nested


def describe_validation_error(exc: ValidationError, sources: Mapping[str, str]) -> str:
    """One line naming the key, what is wrong, and where the bad value came from."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
    key = ".".join(loc) or "config"
    reason = err["msg"]
    if reason.startswith("Value error, "):
        reason = reason[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        reason = "unknown key (check the spelling; `upbitpipe config show` lists every key)"
    elif "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        shown = err["input"]
        if not any(secret in key for secret in ("password", "secret", "key")):
            reason = f"{reason} (got {shown!r})"
    origin = sources.get(key, "")
    where = f" [from {origin}]" if origin and origin != "default" else ""
    more = f" (+{len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{key}: {reason}{where}{more}"


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> LoadedSettings:
    """Build the effective settings from all sources.

    ``overrides`` are CLI flags as dotted keys (``{"collector.markets": "KRW-BTC"}``); ``None``
    values mean "flag not given". Raises :class:`ConfigError` with one readable line.
    """
    environ = os.environ if env is None else env
    path = find_config_file(config_file, environ)
    yaml_layer = _read_yaml(path) if path else {}
    for section, body in yaml_layer.items():
        if section not in SECTIONS:
            msg = f"{section}: unknown section in {path} (sections: {', '.join(SECTIONS)})"
            raise ConfigError(msg)
        if body is not None and not isinstance(body, Mapping):
            msg = f"{section}: must be a mapping of keys in {path}"
            raise ConfigError(msg)
    yaml_layer = {k: v for k, v in yaml_layer.items() if v is not None}
    env_layer = _env_layer(environ)
    cli_flat = {k: v for k, v in (overrides or {}).items() if v is not None}
    cli_layer = _nest(cli_flat)

    sources: dict[str, str] = {}
    for key in _flatten(yaml_layer):
        sources[key] = f"file {path}"
    for key in _flatten(env_layer):
        section, _, name = key.partition(".")
        sources[key] = f"env {ENV_PREFIX}{section.upper()}__{name.upper()}"
    for key in cli_flat:
        sources[key] = "flag"

    merged = _deep_merge(_deep_merge(yaml_layer, env_layer), cli_layer)
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, sources)) from None
    return LoadedSettings(settings=settings, sources=sources, config_file=path)


def redacted_items(loaded: LoadedSettings) -> list[tuple[str, str, str]]:
    """(dotted key, printable value, source) for every setting, secrets masked."""
    rows: list[tuple[str, str, str]] = []
    for section in SECTIONS:
        model: BaseModel = getattr(loaded.settings, section)
        for name in type(model).model_fields:
            value = getattr(model, name)
            if isinstance(value, SecretStr):
                shown = "**********"
            elif value is None:
                shown = "-"
            elif isinstance(value, list):
                shown = ",".join(str(v) for v in value)
            else:
                shown = str(value)
            key = f"{section}.{name}"
            rows.append((key, shown, loaded.source_of(key)))
    return rows
