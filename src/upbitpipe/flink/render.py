"""Render the Flink SQL templates from the config, into statements ready to run.

Templates (``01-create-catalogs.sql`` ... ``05-queries.sql`` in the top-level ``flink-sql/``
folder, shipped inside the wheel as the package ``upbitpipe.flink.sql``; ``flink.sql_dir``
points at a directory of your own) use ``{{ name }}`` placeholders - no
template engine, no logic. Values come from :func:`template_values`; generated blocks (column
lists, table DDL) come from :mod:`upbitpipe.lake.tables`, so Flink and the pypaimon sink agree.

Every value is a pair: what Flink gets and what a person may see. Secrets (S3 keys, the
Kafka SASL password) differ between the two, so the SQL with real secrets exists only in
memory and goes to Flink over a pipe; ``--dry-run`` and error messages show the masked twin.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from upbitpipe.config import Settings, reveal
from upbitpipe.errors import ConfigError
from upbitpipe.flink.split import Statement, split_statements
from upbitpipe.lake.tables import LAKE_TABLES, SECRET_OPTION_KEYS, LakeTable, lake_catalog_options

CATALOG = "lake"
MASK = "******"
TEMPLATE_FILES = (
    "01-create-catalogs.sql",
    "02-create-kafka-sources.sql",
    "03-create-paimon-tables.sql",
    "04-streaming-jobs.sql",
    "05-queries.sql",
)
#: What ``flink submit all`` runs: the pipeline (05 holds ad-hoc queries, run on request).
PIPELINE_FILES = TEMPLATE_FILES[:4]
CATALOG_FILE = TEMPLATE_FILES[0]
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class Value:
    """A rendered value: ``real`` goes to Flink, ``shown`` to people."""

    real: str
    shown: str

    @classmethod
    def plain(cls, text: str) -> Value:
        return cls(text, text)


@dataclass(frozen=True)
class RenderedStatement:
    """One statement of one file. ``statement.sql`` may hold secrets - print ``display``."""

    file: str
    statement: Statement
    display: str

    @property
    def label(self) -> str:
        return f"{self.file}:{self.statement.line}"


def sql_str(text: str) -> str:
    """``text`` as the inside of a single-quoted SQL string."""
    return text.replace("'", "''")


def default_sql_dir() -> Path:
    """The shipped templates: ``flink-sql/`` of the source tree, ``upbitpipe/flink/sql`` in a wheel."""
    return Path(str(resources.files("upbitpipe.flink.sql")))


def sql_dir(settings: Settings) -> Path:
    return settings.flink.sql_dir or default_sql_dir()


def resolve_files(names: Sequence[str], settings: Settings) -> list[Path]:
    """Template paths for ``all`` or file names/paths, with 01-create-catalogs always first.

    A bare name is looked up in the SQL dir; anything else must be an existing path.
    """
    base = sql_dir(settings)
    wanted = list(names) or ["all"]
    paths: list[Path] = []
    for name in wanted:
        if name == "all":
            paths.extend(base / f for f in PIPELINE_FILES)
            continue
        candidate = Path(name)
        if candidate.is_file():
            paths.append(candidate)
        elif (base / name).is_file():
            paths.append(base / name)
        else:
            known = ", ".join(sorted(p.name for p in base.glob("*.sql")))
            msg = f"no SQL file {name!r} (in {base}: {known})"
            raise ConfigError(msg)
    if not any(p.name == CATALOG_FILE for p in paths):
        paths.insert(0, base / CATALOG_FILE)
    unique: dict[str, Path] = {}
    for path in paths:
        unique.setdefault(str(path.resolve()), path)
    return list(unique.values())


def _options_block(options: Mapping[str, Value], indent: str = "  ") -> Value:
    real = ",\n".join(f"{indent}'{sql_str(k)}' = '{sql_str(v.real)}'" for k, v in options.items())
    shown = ",\n".join(f"{indent}'{sql_str(k)}' = '{sql_str(v.shown)}'" for k, v in options.items())
    return Value(real, shown)


def catalog_options(settings: Settings) -> dict[str, Value]:
    """The Paimon catalog's WITH options, secrets masked in ``shown``."""
    out = {"type": Value.plain("paimon")}
    for key, value in lake_catalog_options(settings).items():
        out[key] = Value(value, MASK) if key in SECRET_OPTION_KEYS else Value.plain(value)
    if settings.lake.is_s3:
        # hadoop-aws 3.x inside paimon-s3 wants the region next to a custom endpoint
        out["s3.endpoint.region"] = Value.plain(settings.s3.region)
    return out


def kafka_options(settings: Settings, *, bounded: bool) -> dict[str, Value]:
    """Kafka source options shared by the three topics."""
    kafka = settings.kafka
    opts = {
        "properties.bootstrap.servers": Value.plain(",".join(kafka.bootstrap_servers)),
        "properties.group.id": Value.plain(settings.flink.consumer_group),
        # resume from the group's committed offsets; a new group starts at the beginning
        "scan.startup.mode": Value.plain("group-offsets"),
        "properties.auto.offset.reset": Value.plain("earliest"),
    }
    if bounded:
        opts["scan.bounded.mode"] = Value.plain("latest-offset")
    if kafka.security_protocol != "PLAINTEXT":
        opts["properties.security.protocol"] = Value.plain(kafka.security_protocol)
    if kafka.sasl_mechanism:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        user = (kafka.sasl_username or "").replace('"', '\\"')
        password = (reveal(kafka.sasl_password) or "").replace('"', '\\"')
        jaas = f'{module} required username="{user}" password="%s";'
        opts["properties.sasl.mechanism"] = Value.plain(kafka.sasl_mechanism)
        opts["properties.sasl.jaas.config"] = Value(jaas % password, jaas % MASK)
    opts["format"] = Value.plain("json")
    opts["json.ignore-parse-errors"] = Value.plain("true")
    opts["json.fail-on-missing-field"] = Value.plain("false")
    return opts


def _dt_expr(column: str, timezone: str) -> str:
    """``yyyy-MM-dd`` of a timestamp column in ``timezone`` (the session zone is UTC)."""
    if timezone == "UTC":
        return f"DATE_FORMAT(`{column}`, 'yyyy-MM-dd')"
    return (
        f"SUBSTRING(CONVERT_TZ(DATE_FORMAT(`{column}`, 'yyyy-MM-dd HH:mm:ss'), 'UTC', "
        f"'{sql_str(timezone)}') FROM 1 FOR 10)"
    )


def _table_values(table: LakeTable) -> dict[str, Value]:
    cols = [c for c in table.columns if c.name != "dt"]
    source = ",\n".join(f"  `{c.name}` {c.flink_type}" for c in cols)
    select = ", ".join(f"`{c.name}`" for c in cols)
    required = [k for k in table.primary_key if k != "dt"]
    if table.time_column and table.time_column not in required:
        required.append(table.time_column)
    valid = " AND ".join(f"`{k}` IS NOT NULL" for k in required)
    return {
        f"{table.name}_source_columns": Value.plain(source),
        f"{table.name}_columns": Value.plain(select),
        f"{table.name}_valid": Value.plain(valid),
    }


def template_values(settings: Settings, *, bounded: bool = False) -> dict[str, Value]:
    """Every placeholder the shipped templates use (your own templates may use any of them)."""
    kafka = settings.kafka
    tz = settings.lake.timezone
    values: dict[str, Value] = {
        "catalog": Value.plain(CATALOG),
        "database": Value.plain(settings.lake.database),
        "timezone": Value.plain(tz),
        "catalog_options": _options_block(catalog_options(settings)),
        "kafka_options": _options_block(kafka_options(settings, bounded=bounded)),
        "watermark_delay_seconds": Value.plain(str(settings.flink.watermark_delay_seconds)),
        "consumer_group": Value.plain(settings.flink.consumer_group),
        "bootstrap_servers": Value.plain(",".join(kafka.bootstrap_servers)),
        "trade_dt": Value.plain(_dt_expr("event_time", tz)),
        "ticker_dt": Value.plain(_dt_expr("event_time", tz)),
        "orderbook_dt": Value.plain(_dt_expr("event_time", tz)),
        "window_dt": Value.plain(_dt_expr("window_start", tz)),
        "paimon_tables": Value.plain(
            ";\n\n".join(
                t.flink_ddl(CATALOG, settings.lake.database, settings.lake.buckets)
                for t in LAKE_TABLES.values()
            )
        ),
    }
    for event in ("trade", "ticker", "orderbook"):
        values[f"topic_{event}"] = Value.plain(kafka.topic(event))
        values.update(_table_values(LAKE_TABLES[event]))
    return values


def render_text(template: str, values: Mapping[str, Value], *, source: str = "template") -> Value:
    """Substitute ``{{ name }}``; an unknown name is an error naming the file and line."""

    def lookup(match: re.Match[str]) -> Value:
        name = match.group(1)
        if name not in values:
            line = template.count("\n", 0, match.start()) + 1
            msg = f"{source}:{line}: unknown placeholder {{{{ {name} }}}}"
            raise ConfigError(msg)
        return values[name]

    real = _PLACEHOLDER.sub(lambda m: lookup(m).real, template)
    shown = _PLACEHOLDER.sub(lambda m: lookup(m).shown, template)
    return Value(real, shown)


def render_files(
    paths: Iterable[Path], settings: Settings, *, bounded: bool = False
) -> list[RenderedStatement]:
    """Render and split each file; statements keep their file and line for messages."""
    values = template_values(settings, bounded=bounded)
    out: list[RenderedStatement] = []
    for path in paths:
        try:
            template = path.read_text(encoding="utf-8")
        except OSError as exc:
            msg = f"cannot read {path}: {exc.strerror}"
            raise ConfigError(msg) from None
        text = render_text(template, values, source=path.name)
        try:
            real = split_statements(text.real)
            shown = split_statements(text.shown)
        except ValueError as exc:
            msg = f"{path.name}: {exc}"
            raise ConfigError(msg) from None
        if len(real) != len(shown):  # a secret must never change the statement structure
            msg = f"{path.name}: a secret value breaks the SQL (check quotes in the S3/Kafka credentials)"
            raise ConfigError(msg)
        out.extend(
            RenderedStatement(path.name, stmt, masked.sql)
            for stmt, masked in zip(real, shown, strict=True)
        )
    return out


def secret_strings(settings: Settings) -> list[str]:
    """Every secret that rendered SQL may contain (for scrubbing Flink's output)."""
    found = [
        reveal(settings.s3.access_key),
        reveal(settings.s3.secret_key),
        reveal(settings.kafka.sasl_password),
    ]
    return [s for s in found if s and len(s) >= 3]


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret replaced by the mask."""
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text
