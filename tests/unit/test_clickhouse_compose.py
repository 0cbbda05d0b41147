"""compose/clickhouse: the server, user, cluster and Keeper files agree with each other and
with the config defaults `ch init --cluster` renders from."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from upbitpipe.clickhouse.ddl import render_statements
from upbitpipe.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2] / "compose" / "clickhouse"
XML_FILES = sorted(ROOT.rglob("*.xml"))


def load(rel: str) -> ET.Element:
    root = ET.parse(ROOT / rel).getroot()
    assert root.tag == "clickhouse"
    return root


def defaults() -> Settings:
    return load_settings(env={}).settings


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_xml_is_well_formed_and_holds_no_password(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "clickhouse"
    for tag in ("password", "secret", "password_sha256_hex"):
        for element in root.iter(tag):
            assert not (element.text or "").strip(), f"{path}: literal {tag}"
            assert element.get("from_env"), f"{path}: {tag} must come from_env"


def test_cluster_matches_config_and_macros() -> None:
    cluster_name = defaults().clickhouse.cluster
    cluster = load("cluster/config.d/cluster.xml")
    remote = cluster.find("remote_servers")
    assert remote is not None
    (definition,) = list(remote)
    assert definition.tag == cluster_name
    shards = definition.findall("shard")
    assert len(shards) == 2
    hosts = [s.findtext("replica/host") for s in shards]
    macros = [load(f"cluster/node{n}/macros.xml").find("macros") for n in (1, 2)]
    assert [m.findtext("replica") for m in macros if m is not None] == hosts
    assert [m.findtext("shard") for m in macros if m is not None] == ["01", "02"]
    assert all(s.findtext("internal_replication") == "true" for s in shards)
    stmts = render_statements(defaults(), cluster=True)
    assert all(f"ON CLUSTER '{cluster_name}'" in s.sql for s in stmts)


def test_keeper_is_reachable_where_the_servers_look() -> None:
    keeper = load("keeper/keeper_config.xml")
    assert keeper.findtext("listen_host") == "0.0.0.0"
    port = keeper.findtext("keeper_server/tcp_port")
    node = load("cluster/config.d/cluster.xml").find("zookeeper/node")
    assert node is not None and node.findtext("port") == port
    raft_host = keeper.findtext("keeper_server/raft_configuration/server/hostname")
    assert node.findtext("host") == raft_host


def test_grafana_user_is_read_only_on_the_database() -> None:
    users = load("users.d/grafana.xml")
    assert users.findtext("profiles/grafana_readonly/readonly") == "1"
    grafana = users.find("users/grafana")
    assert grafana is not None and grafana.findtext("profile") == "grafana_readonly"
    grants = [q.text for q in grafana.iter("query")]
    assert grants == [f"GRANT SELECT ON {defaults().clickhouse.database}.*"]
    assert grafana.find("constraints/max_execution_time/changeable_in_readonly") is not None
