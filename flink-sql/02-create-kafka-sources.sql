-- 02 - Kafka source tables (TEMPORARY: they live only in this session's default catalog,
-- so broker addresses and credentials never land in the lake's metadata).
-- Values are the data-contract JSON (DEFAULT field names, `market`, `_ingested_at`,
-- `_source`, `_collector`); bad JSON is skipped, not fatal. Event time comes from the
-- exchange's timestamps with a {{ watermark_delay_seconds }} s watermark for out-of-order events.
-- The collector writes in Kafka transactions: the sources read only what it committed
-- (read_committed), so an aborted first copy of a batch is never seen.
-- `proc_time` (arrival) only orders the candle job's deduplication: keep the first copy.

CREATE TEMPORARY TABLE `kafka_trade` (
{{ trade_source_columns }},
  `event_time` AS TO_TIMESTAMP_LTZ(`trade_timestamp`, 3),
  `proc_time` AS PROCTIME(),
  WATERMARK FOR `event_time` AS `event_time` - INTERVAL '{{ watermark_delay_seconds }}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '{{ topic_trade }}',
  'properties.isolation.level' = 'read_committed',
{{ kafka_options }}
);

CREATE TEMPORARY TABLE `kafka_ticker` (
{{ ticker_source_columns }},
  `event_time` AS TO_TIMESTAMP_LTZ(`timestamp`, 3),
  WATERMARK FOR `event_time` AS `event_time` - INTERVAL '{{ watermark_delay_seconds }}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '{{ topic_ticker }}',
  'properties.isolation.level' = 'read_committed',
{{ kafka_options }}
);

CREATE TEMPORARY TABLE `kafka_orderbook` (
{{ orderbook_source_columns }},
  `event_time` AS TO_TIMESTAMP_LTZ(`timestamp`, 3),
  WATERMARK FOR `event_time` AS `event_time` - INTERVAL '{{ watermark_delay_seconds }}' SECOND
) WITH (
  'connector' = 'kafka',
  'topic' = '{{ topic_orderbook }}',
  'properties.isolation.level' = 'read_committed',
{{ kafka_options }}
);
