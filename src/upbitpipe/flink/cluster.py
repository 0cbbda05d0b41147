"""A standalone Flink cluster as native processes: 1 JobManager + N TaskManagers.

The distribution is the Flink runtime venv (:mod:`upbitpipe.flink.runtime`: ``apache-flink``
from PyPI plus the pinned connector jars in its ``FLINK_LIB_DIR``). Each daemon runs in the
foreground through Flink's own ``bin/jobmanager.sh`` / ``bin/taskmanager.sh`` under a
:class:`~upbitpipe.infra.base.ManagedProcess`. Layout under ``<infra.state_dir>/flink/``::

    conf/config.yaml, conf/log4j-console.properties
    jobmanager/jobmanager.log|.pid      taskmanager-<i>/taskmanager-<i>.log|.pid
    checkpoints/  savepoints/  tmp/

Cluster settings from ``settings.flink``: REST address/port from ``rest_url``, slots per
TaskManager, default parallelism, checkpointing interval (30 s default), the
exponential-delay restart strategy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from upbitpipe.config import FlinkSettings, InfraSettings, S3Settings, Settings
from upbitpipe.errors import ServiceUnavailableError, UpbitpipeError
from upbitpipe.flink.jars import FLINK_VERSION
from upbitpipe.flink.jobs import FlinkRest
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.flink.state import s3_filesystem_config, s3_filesystem_env
from upbitpipe.flink.submit import checkpoint_dir_uri, restart_strategy_config
from upbitpipe.infra.base import ManagedProcess, ServiceStatus, free_port, port_open

log = logging.getLogger(__name__)

JOBMANAGER_MEMORY = "1024m"
TASKMANAGER_MEMORY = "1536m"
LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.console.ref = ConsoleAppender
logger.akka.name = akka
logger.akka.level = WARN
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.hadoop.name = org.apache.hadoop
logger.hadoop.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
appender.console.name = ConsoleAppender
appender.console.type = CONSOLE
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


class FlinkCluster:
    """:class:`~upbitpipe.infra.base.ServiceStarter` for a local standalone Flink cluster."""

    name = "flink"

    def __init__(
        self,
        flink: FlinkSettings,
        infra: InfraSettings,
        *,
        progress: bool = True,
        echo: Callable[[str], None] | None = None,
        s3: S3Settings | None = None,
    ) -> None:
        self.s3 = s3  # checkpoints on S3: the filesystem plugin's endpoint and keys
        self.flink = flink
        self.infra = infra
        self.progress = progress
        self.echo = echo
        self.runtime = FlinkRuntime.in_cache(infra.cache_dir)
        self.dir = infra.state_dir / "flink"
        self.conf_dir = self.dir / "conf"
        url = urlsplit(str(flink.rest_url))
        self.rest_host = url.hostname or "localhost"
        self.rest_port = url.port or 8081
        self.jobmanager = self._process("jobmanager", "jobmanager.sh")
        self.taskmanagers = [
            self._process(f"taskmanager-{i}", "taskmanager.sh")
            for i in range(1, flink.taskmanagers + 1)
        ]

    @classmethod
    def from_settings(cls, settings: Settings) -> FlinkCluster:
        return cls(settings.flink, settings.infra, s3=settings.s3 if settings.lake.is_s3 else None)

    @property
    def rest_url(self) -> str:
        return f"http://{self.rest_host}:{self.rest_port}"

    @property
    def processes(self) -> list[ManagedProcess]:
        return [self.jobmanager, *self.taskmanagers]

    def _process(self, name: str, script: str) -> ManagedProcess:
        # argv/env are finalised in start() (the runtime may not exist yet)
        return ManagedProcess(name, self.dir, ["bash", script, "start-foreground"])

    # -- configuration ---------------------------------------------------------------------
    def cluster_config(self, rpc_port: int) -> dict[str, Any]:
        flink = self.flink
        bind = self.infra.bind_host
        checkpoints = flink.checkpoint_dir or str(self.dir / "checkpoints")
        conf: dict[str, Any] = {
            "jobmanager.rpc.address": self.rest_host if bind == "0.0.0.0" else bind,
            "jobmanager.rpc.port": rpc_port,
            "jobmanager.bind-host": bind,
            "jobmanager.memory.process.size": JOBMANAGER_MEMORY,
            "taskmanager.bind-host": bind,
            "taskmanager.host": self.rest_host if bind == "0.0.0.0" else bind,
            "taskmanager.memory.process.size": TASKMANAGER_MEMORY,
            "taskmanager.numberOfTaskSlots": flink.slots_per_taskmanager,
            "parallelism.default": flink.parallelism,
            "rest.address": self.rest_host,
            "rest.bind-address": bind,
            "rest.port": self.rest_port,
            "execution.checkpointing.interval": flink.checkpoint_interval,
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "state.backend.type": "hashmap",
            "execution.checkpointing.dir": checkpoint_dir_uri(checkpoints),
            "execution.checkpointing.savepoint-dir": checkpoint_dir_uri(
                str(self.dir / "savepoints")
            ),
            "io.tmp.dirs": str(self.dir / "tmp"),
            "web.tmpdir": str(self.dir / "tmp" / "web"),
            "blob.storage.directory": str(self.dir / "tmp" / "blob"),
            "taskmanager.memory.jvm-metaspace.size": "320m",
            "classloader.check-leaked-classloader": False,
        }
        conf.update(restart_strategy_config(flink.restart_strategy))
        if self.s3 is not None:
            conf.update(s3_filesystem_config(self.s3))
        return conf

    def _write_conf(self, rpc_port: int) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp" / "web").mkdir(parents=True, exist_ok=True)
        (self.dir / "tmp" / "blob").mkdir(parents=True, exist_ok=True)
        lines = [f"{k}: {_yaml_scalar(v)}" for k, v in self.cluster_config(rpc_port).items()]
        (self.conf_dir / "config.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (self.conf_dir / "log4j-console.properties").write_text(LOG4J, encoding="utf-8")

    def _prepare(self) -> None:
        """Runtime + config + the final argv/env of every daemon."""
        self.runtime.ensure(self.infra.cache_dir, progress=self.progress, echo=self.echo)
        bin_dir = self.runtime.flink_home / "bin"
        for proc in self.processes:
            script = "jobmanager.sh" if proc.name == "jobmanager" else "taskmanager.sh"
            proc.argv = ["bash", str(bin_dir / script), "start-foreground"]
            env = self.runtime.env()
            if self.s3 is not None:
                env.update(s3_filesystem_env(self.s3))  # in memory only, never in config.yaml
            env.update(
                {
                    "FLINK_CONF_DIR": str(self.conf_dir),
                    "FLINK_LOG_DIR": str(proc.dir),
                    "FLINK_PID_DIR": str(proc.dir),
                    "FLINK_IDENT_STRING": proc.name,
                }
            )
            proc.env = env
            proc.cwd = proc.dir
            proc.dir.mkdir(parents=True, exist_ok=True)

    # -- ServiceStarter ----------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        """Start JM then TMs; returns when every TaskManager has registered."""
        if self._healthy():
            return
        if any(p.is_running() for p in self.processes):
            self.stop(15.0)  # half a cluster: start clean
        if port_open(self.rest_host, self.rest_port):
            msg = (
                f"flink: port {self.rest_port} is taken by another process (change flink.rest_url)"
            )
            raise ServiceUnavailableError(msg)
        try:
            self._prepare()
            self._write_conf(free_port(self.infra.bind_host))
            self.jobmanager.spawn()
            self.jobmanager.wait_for_port(self.rest_host, self.rest_port, timeout)
            for tm in self.taskmanagers:
                tm.spawn()
            self.jobmanager.wait_until(self._healthy, timeout, "showing every TaskManager")
            dead = [tm for tm in self.taskmanagers if not tm.is_running()]
            if dead:
                what = "exited during start"
                raise dead[0].failure(what)
        except (UpbitpipeError, OSError) as exc:
            self.stop(15.0)
            if isinstance(exc, UpbitpipeError):
                raise
            msg = f"flink: could not start ({exc})"
            raise ServiceUnavailableError(msg) from None

    def stop(self, timeout: float) -> None:
        for proc in [*self.taskmanagers, self.jobmanager]:
            proc.terminate(timeout)

    def _overview(self) -> dict[str, Any] | None:
        if not port_open(self.rest_host, self.rest_port):
            return None
        try:
            return FlinkRest(self.rest_url, timeout=3.0).overview()
        except UpbitpipeError:
            return None

    def _healthy(self) -> bool:
        overview = self._overview()
        return overview is not None and int(overview.get("taskmanagers", 0)) >= len(
            self.taskmanagers
        )

    def status(self) -> ServiceStatus:
        pids = [pid for p in self.processes for pid in p.pids()]
        overview = self._overview()
        healthy = overview is not None and int(overview.get("taskmanagers", 0)) >= len(
            self.taskmanagers
        )
        if overview is not None:
            detail = (
                f"1 JobManager + {overview.get('taskmanagers', 0)} TaskManagers, "
                f"slots {overview.get('slots-available', 0)}/{overview.get('slots-total', 0)} free, "
                f"{overview.get('jobs-running', 0)} jobs running"
            )
        else:
            detail = f"down (logs in {self.dir})"
        return ServiceStatus(
            name=self.name,
            address=self.rest_url,
            running=bool(pids) or overview is not None,
            pids=pids,
            healthy=healthy,
            version=f"Flink {FLINK_VERSION}",
            detail=detail,
        )

    def log_paths(self) -> list[Path]:
        return [p.log_path for p in self.processes]


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    text = str(value)
    return "'" + text.replace("'", "''") + "'"
