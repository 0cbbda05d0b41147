"""Finding a Java runtime for the JVM services (Kafka needs 17 or newer)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

from upbitpipe.errors import ServiceUnavailableError

_VERSION_RE = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` when set, else ``java`` from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        msg = "java not found: install a JDK 17+ (e.g. apt-get install openjdk-17-jre-headless) or set JAVA_HOME"
        raise ServiceUnavailableError(msg)
    return found


@lru_cache(maxsize=4)
def java_major(binary: str) -> int:
    """The feature version (17, 21, ...) that ``binary -version`` reports."""
    try:
        out = subprocess.run(  # noqa: S603
            [binary, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        msg = f"{binary} -version failed: {exc}"
        raise ServiceUnavailableError(msg) from None
    match = _VERSION_RE.search(out.stderr + out.stdout)
    if match is None:
        msg = f"cannot read the Java version from {binary} -version"
        raise ServiceUnavailableError(msg)
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def require_java(minimum: int) -> str:
    """A java binary of at least ``minimum``; one clear line when there is none."""
    binary = java_binary()
    major = java_major(binary)
    if major < minimum:
        msg = f"{binary} is Java {major}; Java {minimum}+ is needed (set JAVA_HOME)"
        raise ServiceUnavailableError(msg)
    return binary
