"""ClickHouse: the real-time analytics path (Kafka engine -> MergeTree -> Grafana).

:mod:`.schema` declares the tables as data, :mod:`.ddl` renders the statements (pure),
:mod:`.apply` runs them against a server with clickhouse-driver.
"""
