"""A local Apache Kafka 4.x cluster (KRaft) as native processes: N combined broker+controller nodes.

Layout under ``<infra.state_dir>/kafka/``::

    cluster.json              cluster id + the topology the data dirs were formatted for
    log4j2.properties         shared logging config (console -> each node's log file)
    node-<id>/server.properties, node-<id>/data/, node-<id>/node-<id>.log, node-<id>/node-<id>.pid

Static quorum (``controller.quorum.voters``): every node is a voter, so the data dirs are
formatted once with ``kafka.tools.StorageTool format -t <id>`` (no ``--standalone``).
"""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from upbitpipe.config import EVENT_TYPES, InfraSettings, KafkaSettings
from upbitpipe.errors import ConfigError, ServiceUnavailableError
from upbitpipe.infra.artifacts import fetch_all
from upbitpipe.infra.base import ManagedProcess, ServiceStatus, port_open
from upbitpipe.infra.java import require_java
from upbitpipe.infra.kafka_admin import TopicSpec, broker_ids_sync, ensure_topics_sync
from upbitpipe.infra.kafka_artifacts import KAFKA_JARS, KAFKA_VERSION

log = logging.getLogger(__name__)

CONTROLLER_PORT_OFFSET = 100  # client 29092 -> controller 29192
LOG4J2 = """\
status = warn
shutdownHook = disable
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
"""


@dataclass(frozen=True)
class KafkaNode:
    """One combined broker+controller."""

    node_id: int
    host: str  # advertised to clients
    client_port: int
    controller_port: int

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.client_port}"


def plan_nodes(
    kafka: KafkaSettings,
    bind_host: str,
    brokers: int,
    controller_ports: Sequence[int] | None = None,
) -> list[KafkaNode]:
    """Node ids 1..N on the ports of ``kafka.bootstrap_servers`` (extended +1 past the list)."""
    parsed = [s.rpartition(":") for s in kafka.bootstrap_servers]
    ports = [int(port) for _, _, port in parsed]
    while len(ports) < brokers:
        ports.append(ports[-1] + 1)
    host = parsed[0][0]
    if host in ("localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"):  # noqa: S104 - matching, not binding
        host = bind_host
    ctl = list(controller_ports or [p + CONTROLLER_PORT_OFFSET for p in ports[:brokers]])
    if len(ctl) < brokers:
        msg = f"kafka: {brokers} brokers need {brokers} controller ports, got {len(ctl)}"
        raise ConfigError(msg)
    nodes = [KafkaNode(i + 1, host, ports[i], ctl[i]) for i in range(brokers)]
    used = [n.client_port for n in nodes] + [n.controller_port for n in nodes]
    if len(set(used)) != len(used):
        msg = f"kafka: client and controller ports overlap ({sorted(used)})"
        raise ConfigError(msg)
    return nodes


def server_properties(
    node: KafkaNode,
    nodes: Sequence[KafkaNode],
    bind_host: str,
    data_dir: Path,
    kafka: KafkaSettings,
) -> str:
    """``server.properties`` of one node; RF and min ISR are capped by the broker count."""
    count = len(nodes)
    rf = min(kafka.replication_factor, count)
    isr = min(kafka.min_insync_replicas, rf)
    voters = ",".join(f"{n.node_id}@{bind_host}:{n.controller_port}" for n in nodes)
    props = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://{bind_host}:{node.client_port},CONTROLLER://{bind_host}:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://{node.host}:{node.client_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": kafka.partitions,
        "default.replication.factor": rf,
        "min.insync.replicas": isr,
        "auto.create.topics.enable": "true",
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 3,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": isr,
        "transaction.state.log.num.partitions": 3,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": isr,
        "share.coordinator.state.topic.num.partitions": 3,
        "group.initial.rebalance.delay.ms": 0,
        "num.network.threads": 2,
        "num.io.threads": 2,
        "num.recovery.threads.per.data.dir": 1,
        "log.retention.hours": 168,
        "controlled.shutdown.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


def topic_specs(kafka: KafkaSettings, brokers: int) -> list[TopicSpec]:
    """The collector's topics (``kafka.topic(t)`` for ticker/trade/orderbook)."""
    rf = min(kafka.replication_factor, brokers)
    isr = min(kafka.min_insync_replicas, rf)
    return [
        TopicSpec(kafka.topic(t), kafka.partitions, rf, {"min.insync.replicas": str(isr)})
        for t in EVENT_TYPES
    ]


def new_cluster_id() -> str:
    """A KRaft cluster id (URL-safe base64 of a UUID) that does not start with ``-``:
    ``kafka-storage format -t -x...`` would read such an id as an option and fail (1 in 32)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaCluster:
    """:class:`~upbitpipe.infra.base.ServiceStarter` for a local N-node KRaft cluster."""

    name = "kafka"

    def __init__(
        self,
        kafka: KafkaSettings,
        infra: InfraSettings,
        *,
        brokers: int | None = None,
        controller_ports: Sequence[int] | None = None,
        heap: str = "384m",
        create_topics: bool = True,
        progress: bool = True,
        die_with_parent: bool = False,
    ) -> None:
        self.kafka = kafka
        self.infra = infra
        self.bind_host = infra.bind_host
        self.nodes = plan_nodes(
            kafka, self.bind_host, brokers or infra.kafka_brokers, controller_ports
        )
        self.dir = infra.state_dir / "kafka"
        self.heap = heap
        self.create_topics = create_topics
        self.progress = progress
        self.die_with_parent = die_with_parent
        self._classpath: str | None = None

    # -- addresses -------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> list[str]:
        return [n.bootstrap for n in self.nodes]

    def node_process(self, index: int) -> ManagedProcess:
        """The pid/log bookkeeping of node ``index`` (0-based), e.g. for its ``log_path``."""
        return self._node_process(index, "java")

    # -- preparation -----------------------------------------------------------------------
    def _prepare(self) -> str:
        """Fetch jars, write configs, format data dirs; returns the java binary."""
        java = require_java(17)
        jars = fetch_all(KAFKA_JARS, self.infra.cache_dir, progress=self.progress)
        self._classpath = ":".join(str(j) for j in jars)
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "log4j2.properties").write_text(LOG4J2, encoding="utf-8")
        cluster_id = self._cluster_id()
        to_format: list[subprocess.Popen[bytes]] = []
        for node in self.nodes:
            node_dir = self.dir / f"node-{node.node_id}"
            data = node_dir / "data"
            node_dir.mkdir(parents=True, exist_ok=True)
            props = node_dir / "server.properties"
            props.write_text(
                server_properties(node, self.nodes, self.bind_host, data, self.kafka),
                encoding="utf-8",
            )
            if not (data / "meta.properties").is_file():
                argv = [*self._java_argv(java, "kafka.tools.StorageTool", "128m")]
                argv += ["format", "-t", cluster_id, "-c", str(props), "--ignore-formatted"]
                with (node_dir / "format.log").open("wb") as out:
                    to_format.append(
                        subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
                    )
        for proc in to_format:
            if proc.wait(timeout=120) != 0:
                msg = f"kafka: formatting a data dir failed (see {self.dir}/node-*/format.log)"
                raise ServiceUnavailableError(msg)
        return java

    def _cluster_id(self) -> str:
        """The cluster id, generated once; refuses a changed topology on formatted data."""
        meta = self.dir / "cluster.json"
        topology = [asdict(n) for n in self.nodes]
        if meta.is_file():
            saved = json.loads(meta.read_text(encoding="utf-8"))
            if saved.get("nodes") != topology:
                msg = (
                    f"kafka: {self.dir} holds a cluster formatted for other brokers/ports; "
                    "run `upbitpipe infra down kafka --purge` first (deletes its data)"
                )
                raise ConfigError(msg)
            return str(saved["cluster_id"])

        cluster_id = new_cluster_id()
        meta.write_text(json.dumps({"cluster_id": cluster_id, "nodes": topology}, indent=2))
        return cluster_id

    def _java_argv(self, java: str, main: str, heap: str) -> list[str]:
        """The JVM command line (``_classpath`` is empty for pid/log bookkeeping only)."""
        return [
            java,
            f"-Xms{heap}" if heap == "128m" else "-Xms128m",
            f"-Xmx{heap}",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            self._classpath or "",
            main,
        ]

    def _node_process(self, index: int, java: str) -> ManagedProcess:
        node = self.nodes[index]
        props = self.dir / f"node-{node.node_id}" / "server.properties"
        argv = [*self._java_argv(java, "kafka.Kafka", self.heap), str(props)]
        return ManagedProcess(
            f"node-{node.node_id}", self.dir, argv, die_with_parent=self.die_with_parent
        )

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        """Start every node not running, wait until all brokers are registered, create topics."""
        deadline = time.monotonic() + timeout
        java = self._prepare()
        started = [
            self._node_process(i, java) for i in range(len(self.nodes)) if not self._running(i)
        ]
        for proc in started:
            proc.spawn()
        try:
            self._wait_healthy(deadline, started)
            if self.create_topics:
                remaining = max(5.0, deadline - time.monotonic())
                created = ensure_topics_sync(
                    self.bootstrap_servers, topic_specs(self.kafka, len(self.nodes)), remaining
                )
                if created:
                    log.info("kafka: created topics %s", ", ".join(created))
        except BaseException:
            for proc in started:
                proc.terminate(timeout=10)
            raise

    def _wait_healthy(self, deadline: float, started: Sequence[ManagedProcess]) -> None:
        for proc, node in zip(started, [self._node_of(p) for p in started], strict=True):
            proc.wait_for_port(
                self.bind_host, node.client_port, max(1.0, deadline - time.monotonic())
            )
        expected = [n.node_id for n in self.nodes]
        watcher = started[0] if started else self._node_process(0, "java")
        watcher.wait_until(
            lambda: broker_ids_sync(self.bootstrap_servers, 3.0) == expected,
            max(1.0, deadline - time.monotonic()),
            f"showing all {len(expected)} brokers in the cluster metadata",
        )

    def _node_of(self, proc: ManagedProcess) -> KafkaNode:
        return next(n for n in self.nodes if proc.name == f"node-{n.node_id}")

    def _running(self, index: int) -> bool:
        return self._node_process(index, "java").is_running()

    def stop(self, timeout: float) -> None:
        """SIGTERM all nodes at once (controlled shutdown), SIGKILL after ``timeout``."""
        procs = [self._bookkeeping(n) for n in self.formatted_nodes()]
        procs += self._strays(procs)
        import concurrent.futures

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
            list(pool.map(lambda p: p.terminate(timeout), procs))

    def _strays(self, known: Sequence[ManagedProcess]) -> list[ManagedProcess]:
        """Pid files of nodes from an earlier, larger topology (so down leaves nothing)."""
        names = {p.name for p in known}
        if not self.dir.is_dir():
            return []
        return [
            ManagedProcess(d.name, self.dir, ["java"])
            for d in sorted(self.dir.glob("node-*"))
            if d.is_dir() and d.name not in names
        ]

    def kill_broker(self, index: int) -> None:
        """SIGKILL node ``index`` (0-based) -- a crash, for failure tests."""
        self._node_process(index, "java").kill()

    def stop_broker(self, index: int, timeout: float = 30.0) -> None:
        """Stop node ``index`` (0-based) gracefully."""
        self._node_process(index, "java").terminate(timeout)

    def start_broker(self, index: int, timeout: float = 60.0) -> None:
        """(Re)start node ``index`` (0-based) and wait until it is back in the metadata."""
        deadline = time.monotonic() + timeout
        java = require_java(17)
        if self._classpath is None:
            self._prepare()
        proc = self._node_process(index, java)
        proc.spawn()
        self._wait_healthy(deadline, [proc])

    def purge(self) -> None:
        """Delete the cluster's data (only when stopped)."""
        import shutil

        if any(self._running(i) for i in range(len(self.nodes))):
            msg = "kafka: stop the cluster before purging its data"
            raise ConfigError(msg)
        shutil.rmtree(self.dir, ignore_errors=True)

    def formatted_nodes(self) -> list[KafkaNode]:
        """The topology the data on disk was formatted for (else the planned one).

        ``status`` and ``stop`` report on what actually runs, even when it was started with
        another ``--brokers`` than the config now says.
        """
        meta = self.dir / "cluster.json"
        try:
            saved = json.loads(meta.read_text(encoding="utf-8"))
            return [KafkaNode(**node) for node in saved["nodes"]]
        except (OSError, ValueError, KeyError, TypeError):
            return list(self.nodes)

    def status(self) -> ServiceStatus:
        nodes = self.formatted_nodes()
        procs = [self._bookkeeping(n) for n in nodes]
        pids = [pid for p in procs for pid in ([p.pid] if p.pid else [])]
        up = [
            p.is_running() and port_open(self.bind_host, n.client_port)
            for p, n in zip(procs, nodes, strict=True)
        ]
        running = any(p.is_running() for p in procs)
        bootstrap = [n.bootstrap for n in nodes]
        healthy = (
            running and all(up) and broker_ids_sync(bootstrap, 2.0) == [n.node_id for n in nodes]
        )
        return ServiceStatus(
            name=self.name,
            address=",".join(bootstrap),
            running=running,
            pids=pids,
            healthy=healthy,
            version=f"Apache Kafka {KAFKA_VERSION} (KRaft)",
            detail=f"{sum(up)}/{len(nodes)} brokers up; logs {self.dir}/node-*/",
        )

    def _bookkeeping(self, node: KafkaNode) -> ManagedProcess:
        return ManagedProcess(f"node-{node.node_id}", self.dir, ["java"])
