"""Create the lake and archive buckets (plus versioning / lifecycle) idempotently.

Works against any S3-compatible server through the ``minio`` client (path-style, plain HTTP
or TLS by the endpoint's scheme). Failures become one line: refused credentials raise
:class:`AuthError`, an endpoint that does not answer raises :class:`ServiceUnavailableError`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.commonconfig import ENABLED, Filter
from minio.error import S3Error
from minio.lifecycleconfig import Expiration, LifecycleConfig, Rule
from minio.versioningconfig import VersioningConfig

from upbitpipe.config import S3Settings
from upbitpipe.errors import AuthError, ServiceUnavailableError, UpbitpipeError

T = TypeVar("T")
AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "InvalidToken"}
)
EXPIRE_RULE_ID = "upbitpipe-archive-expiry"


@dataclass(frozen=True)
class BucketResult:
    """What ``buckets init`` did for one bucket."""

    name: str
    created: bool
    versioning: bool
    expire_days: int | None


def make_client(
    endpoint: str, access_key: str, secret_key: str, region: str, *, timeout: float = 10.0
) -> Minio:
    """A minio client with bounded connect/read timeouts and one retry (no long hangs)."""
    url = urlsplit(endpoint)
    if not url.hostname:
        msg = f"s3.endpoint {endpoint!r} has no host"
        raise UpbitpipeError(msg)
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        retries=urllib3.Retry(
            total=1, connect=0, read=0, backoff_factor=0.2, status_forcelist=(502, 503, 504)
        ),
    )
    return Minio(
        url.netloc,
        access_key=access_key,
        secret_key=secret_key,
        secure=url.scheme == "https",
        region=region,
        http_client=http,
    )


def s3_call(endpoint: str, what: str, fn: Callable[[], T]) -> T:
    """Run one S3 call, mapping client errors to one-line domain errors."""
    try:
        return fn()
    except S3Error as exc:
        if exc.code in AUTH_CODES:
            msg = f"s3 at {endpoint} refused the credentials ({exc.code}) while trying to {what}; check s3.access_key / s3.secret_key"
            raise AuthError(msg) from None
        msg = f"s3 at {endpoint}: {what} failed ({exc.code}: {exc.message})"
        raise UpbitpipeError(msg) from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        msg = f"s3 at {endpoint} is not reachable ({network_cause(exc)}) while trying to {what}; is the server up? (`upbitpipe infra up s3`)"
        raise ServiceUnavailableError(msg) from None


def network_cause(exc: BaseException) -> str:
    """The real cause of a failed connection in a few words: connection refused, timed out,
    host not found... (urllib3 wraps it two or three levels deep)."""
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(chain) < 6:
        chain.append(seen)
        seen = getattr(seen, "reason", None) or seen.__cause__ or seen.__context__
        if not isinstance(seen, BaseException):
            break
    text = " ".join(str(link) for link in chain)
    if any(isinstance(link, ConnectionRefusedError) for link in chain) or "refused" in text:
        return "connection refused"
    if any(isinstance(link, socket.gaierror) for link in chain) or "resolve" in text:
        return "host not found"
    if any(isinstance(link, (TimeoutError, urllib3.exceptions.TimeoutError)) for link in chain):
        return "timed out"
    return type(chain[-1]).__name__


def check_warehouse_bucket(
    s3: S3Settings, warehouse: str, access_key: str, secret_key: str, *, timeout: float = 3.0
) -> None:
    """Fail fast, with the real cause, before a Paimon catalog opens an ``s3://`` warehouse.

    pypaimon retries for a minute or more against an endpoint that does not answer and then
    reports a missing bucket; this answers within ``timeout`` seconds: connection refused /
    timed out / host not found (:class:`ServiceUnavailableError`), refused credentials
    (:class:`AuthError`), or a bucket that does not exist.
    """
    endpoint = str(s3.endpoint).rstrip("/")
    bucket = warehouse.split("://", 1)[1].split("/", 1)[0]
    client = make_client(endpoint, access_key, secret_key, s3.region, timeout=timeout)
    if not s3_call(endpoint, f"check bucket {bucket}", lambda: client.bucket_exists(bucket)):
        _require_s3_server(endpoint, timeout)
        msg = (
            f"lake.warehouse: bucket {bucket!r} does not exist at {endpoint} "
            "(create it with `upbitpipe buckets init`)"
        )
        raise UpbitpipeError(msg)


def _lifecycle(days: int) -> LifecycleConfig:
    rule = Rule(
        ENABLED,
        rule_filter=Filter(prefix=""),
        rule_id=EXPIRE_RULE_ID,
        expiration=Expiration(days=days),
    )
    return LifecycleConfig([rule])


def ensure_bucket(
    client: Minio,
    endpoint: str,
    name: str,
    *,
    region: str,
    versioning: bool,
    expire_days: int | None = None,
) -> BucketResult:
    """Create ``name`` if missing; turn versioning on when asked; set the expiry rule."""
    exists = s3_call(endpoint, f"check bucket {name}", lambda: client.bucket_exists(name))
    if not exists:
        try:
            s3_call(endpoint, f"create bucket {name}", lambda: client.make_bucket(name, region))
        except UpbitpipeError as exc:  # a concurrent `buckets init` won the race
            if "BucketAlreadyOwnedByYou" not in str(exc):
                raise
    if versioning:
        current: Any = s3_call(
            endpoint, f"read versioning of {name}", lambda: client.get_bucket_versioning(name)
        )
        if current.status != ENABLED:
            s3_call(
                endpoint,
                f"enable versioning on {name}",
                lambda: client.set_bucket_versioning(name, VersioningConfig(ENABLED)),
            )
    if expire_days is not None:
        s3_call(
            endpoint,
            f"set the lifecycle of {name}",
            lambda: client.set_bucket_lifecycle(name, _lifecycle(expire_days)),
        )
    return BucketResult(name, not exists, versioning, expire_days)


def init_buckets(
    s3: S3Settings, access_key: str, secret_key: str, *, timeout: float = 10.0
) -> list[BucketResult]:
    """``s3.warehouse_bucket`` and ``s3.archive_bucket`` (expiring after ``archive_expire_days``)."""
    endpoint = str(s3.endpoint).rstrip("/")
    client = make_client(endpoint, access_key, secret_key, s3.region, timeout=timeout)
    return [
        ensure_bucket(
            client, endpoint, s3.warehouse_bucket, region=s3.region, versioning=s3.versioning
        ),
        ensure_bucket(
            client,
            endpoint,
            s3.archive_bucket,
            region=s3.region,
            versioning=s3.versioning,
            expire_days=s3.archive_expire_days,
        ),
    ]


def _require_s3_server(endpoint: str, timeout: float) -> None:
    """A 404 for a bucket means "no such bucket" only if an S3 server said it: S3 and MinIO
    stamp every answer with ``x-amz-request-id``; a proxy or a web server answering in the
    endpoint's place does not (and then the endpoint, not the bucket, is the problem)."""
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout))
    try:
        response = http.request("GET", f"{endpoint}/", retries=False, preload_content=True)
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        msg = f"s3 at {endpoint} is not reachable ({network_cause(exc)}); check s3.endpoint"
        raise ServiceUnavailableError(msg) from None
    if "x-amz-request-id" not in response.headers:
        server = response.headers.get("server", "unknown")
        msg = (
            f"s3.endpoint {endpoint} is not an S3 server (HTTP {response.status} from server "
            f"{server!r}, no x-amz-request-id); check s3.endpoint"
        )
        raise ServiceUnavailableError(msg)
