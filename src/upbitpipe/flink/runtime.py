"""The Flink runtime: a private virtualenv with PyFlink, plus a lib dir with our jars.

``apache-flink`` pins old pyarrow/apache-beam versions that conflict with pypaimon in the
project's own environment, so Flink lives in a venv of its own under the user cache dir,
created on first use and reused after. It provides the Flink distribution:
``pyflink/lib`` (flink-dist, planner, formats), ``pyflink/bin`` (jobmanager.sh,
taskmanager.sh) and the Python Table API that the submit runner uses.

Only what that needs is installed (:data:`REQUIREMENTS`, with ``--no-deps``): the
``apache-flink`` package (the Python API), ``apache-flink-libraries`` (the jars and
scripts), ``py4j`` (the bridge to the JVM) and ``ruamel.yaml`` (PyFlink reads the Flink
config with it). ``apache-flink``'s declared dependencies - Apache Beam, pandas, pyarrow,
grpcio, numpy, ... - serve Python UDFs and pandas conversion, which upbitpipe does not use;
installing them took most of a first run. Without Beam, PyFlink must not start its Python
UDF worker service for a local environment: :meth:`FlinkRuntime.env` sets
``_python_worker_execution_mode=process``, which skips it (SQL-only jobs never need it).

The connector jars are not copied into the venv: :meth:`FlinkRuntime.ensure` builds
``<runtime>/lib/`` with symlinks to the distribution jars *and* the pinned connector jars,
and every Flink process (cluster daemons, the local mini-cluster, the submit client) gets it
as ``FLINK_LIB_DIR`` - so they all see the same classpath.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.flink.jars import FLINK_VERSION, build_plugins_dir, fetch_connector_jars
from upbitpipe.infra.java import require_java

log = logging.getLogger(__name__)

READY_MARKER = ".upbitpipe-ready"
PIP_TIMEOUT_SECONDS = 1800.0
#: What the venv gets, installed with ``--no-deps`` (see the module docstring for why).
REQUIREMENTS: tuple[str, ...] = (
    f"apache-flink=={FLINK_VERSION}",
    f"apache-flink-libraries=={FLINK_VERSION}",
    "py4j==0.10.9.7",
    "ruamel.yaml==0.19.1",
)
#: A runtime directory per requirement set: changing :data:`REQUIREMENTS` makes a new one
#: and never touches a venv a running cluster uses.
RUNTIME_ID = (
    f"{FLINK_VERSION}-{hashlib.sha256(chr(10).join(REQUIREMENTS).encode()).hexdigest()[:8]}"
)
#: Roughly how long creating the runtime takes on 2 cores (downloads ~240 MB from PyPI and
#: repacks apache-flink-libraries into a wheel; seconds with a warm pip cache).
CREATE_ESTIMATE_SECONDS = (15, 60)
#: pip output lines worth showing as progress.
_PIP_PROGRESS = ("Collecting", "Downloading", "Building", "Installing", "Successfully")
#: PyFlink 1.20 supports CPython 3.8 - 3.11.
SUPPORTED_PYTHONS = ("3.11", "3.10", "3.9")


def _python_for_venv() -> str:
    """An interpreter PyFlink supports: ours if it fits, else python3.11/3.10/3.9 on PATH."""
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    if ours in SUPPORTED_PYTHONS:
        return sys.executable
    for version in SUPPORTED_PYTHONS:
        found = shutil.which(f"python{version}")
        if found:
            return found
    msg = (
        f"apache-flink {FLINK_VERSION} needs Python {' or '.join(SUPPORTED_PYTHONS)} "
        f"(this is {ours}); install python3.11 so the Flink runtime venv can be created"
    )
    raise ServiceUnavailableError(msg)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive file lock: two commands creating the runtime at once wait for each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class FlinkRuntime:
    """Paths of one Flink runtime under ``<cache_dir>/flink/<version>/``."""

    root: Path

    @classmethod
    def in_cache(cls, cache_dir: Path) -> FlinkRuntime:
        return cls(cache_dir / "flink" / RUNTIME_ID)

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib"

    @property
    def plugins_dir(self) -> Path:
        return self.root / "plugins"

    @property
    def flink_home(self) -> Path:
        """The ``pyflink`` package directory, which is a Flink distribution (bin/, lib/, opt/)."""
        found = sorted(self.venv.glob("lib/python3*/site-packages/pyflink"))
        if not found:
            msg = f"no pyflink in {self.venv}; run `upbitpipe infra up flink` or `upbitpipe flink submit` to create it"
            raise ServiceUnavailableError(msg)
        return found[-1]

    def is_ready(self) -> bool:
        marker = self.root / READY_MARKER
        try:
            installed = marker.read_text(encoding="utf-8").split()
        except OSError:
            return False
        return installed == list(REQUIREMENTS) and self.python.is_file()

    def ensure(
        self,
        cache_dir: Path,
        *,
        progress: bool = True,
        echo: Callable[[str], None] | None = None,
        on_line: Callable[[str], None] | None = None,
    ) -> FlinkRuntime:
        """Create the venv (once), fetch the connector jars, (re)build the lib dir.

        ``echo`` gets what is being done (one line); ``on_line`` every progress line of pip
        (default: ``echo`` when ``progress``, else nothing). ``progress`` also shows the
        download bars of the connector jars.
        """
        require_java(11)
        if on_line is None and progress:
            on_line = echo or (lambda line: log.info("%s", line))
        with _locked(self.root.parent / f".{self.root.name}.lock"):
            if not self.is_ready():
                self._create_venv(echo=echo, on_line=on_line)
            jars = fetch_connector_jars(cache_dir, progress=progress)
            self._build_lib_dir(jars)
            build_plugins_dir(
                cache_dir, self.flink_home / "plugins", self.plugins_dir, progress=progress
            )
        return self

    def _create_venv(
        self, *, echo: Callable[[str], None] | None, on_line: Callable[[str], None] | None
    ) -> None:
        say = echo or (lambda line: log.info("%s", line))
        if self.venv.exists():
            shutil.rmtree(self.venv)
        self.root.mkdir(parents=True, exist_ok=True)
        python = _python_for_venv()
        say(f"creating the Flink runtime in {self.venv} ({', '.join(REQUIREMENTS)}; once)")
        self._run([python, "-m", "venv", str(self.venv)], say, on_line=None)
        pip = [str(self.python), "-m", "pip", "--disable-pip-version-check"]
        self._run(
            [*pip, "install", "--no-deps", "--progress-bar", "off", *REQUIREMENTS],
            say,
            on_line=on_line,
        )
        # the Table API imports, without a JVM: a missing module shows up now, not at submit
        self._run([str(self.python), "-c", "import pyflink.table"], say, on_line=None)
        (self.root / READY_MARKER).write_text("\n".join(REQUIREMENTS) + "\n", encoding="utf-8")

    @staticmethod
    def _run(
        argv: list[str], say: Callable[[str], None], *, on_line: Callable[[str], None] | None
    ) -> None:
        tail: list[str] = []
        try:
            proc = subprocess.Popen(  # noqa: S603 - our own argv
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "PIP_NO_INPUT": "1"},
            )
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.rstrip()
                tail = [*tail[-19:], line]
                if on_line is not None and line.lstrip().startswith(_PIP_PROGRESS):
                    on_line(line.strip())
            code = proc.wait(timeout=PIP_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            msg = f"creating the Flink runtime failed: {' '.join(argv[:4])}: {exc}"
            raise ServiceUnavailableError(msg) from None
        if code != 0:
            for line in tail:
                say(line)
            msg = f"creating the Flink runtime failed: `{' '.join(argv)}` exited {code}"
            raise ServiceUnavailableError(msg)

    def _build_lib_dir(self, connector_jars: list[Path]) -> None:
        """``lib/`` = the distribution's jars + the connector jars, as symlinks (idempotent)."""
        wanted = {p.name: p for p in sorted((self.flink_home / "lib").glob("*.jar"))}
        wanted.update({p.name: p for p in connector_jars})
        self.lib_dir.mkdir(parents=True, exist_ok=True)
        for existing in self.lib_dir.iterdir():
            if existing.name not in wanted or existing.resolve() != wanted[existing.name].resolve():
                existing.unlink()
        for name, target in wanted.items():
            link = self.lib_dir / name
            if not link.exists():
                tmp = self.lib_dir / f".{name}.{os.getpid()}"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target.resolve())
                tmp.replace(link)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Environment for any Flink process: FLINK_HOME, FLINK_LIB_DIR, JAVA_HOME if known.

        ``FLINK_HOME`` must be set, or pyflink resets ``FLINK_LIB_DIR`` to its own lib.
        """
        env = dict(os.environ if base is None else base)
        env["FLINK_HOME"] = str(self.flink_home)
        env["FLINK_LIB_DIR"] = str(self.lib_dir)
        env["FLINK_OPT_DIR"] = str(self.flink_home / "opt")
        env["FLINK_PLUGINS_DIR"] = str(self.plugins_dir)
        java = require_java(11)
        if "JAVA_HOME" not in env:
            env["JAVA_HOME"] = str(Path(java).resolve().parent.parent)
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        # no Python UDF worker (it needs Apache Beam, which the runtime leaves out)
        env["_python_worker_execution_mode"] = "process"
        return env
