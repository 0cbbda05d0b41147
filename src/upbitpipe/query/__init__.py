"""`upbitpipe sql`: ClickHouse SQL (chDB, in-process) over the Paimon lake's tables.

``tables`` finds the lake and loads its tables into chDB (merged on the primary key by
pypaimon), ``engine`` runs statements, ``formats`` writes results, ``presets`` holds the
queries shared with the Grafana dashboards, ``charts`` draws results, ``prompt`` is the
interactive loop.
"""
