-- 04 - one job: every streaming INSERT in one statement set (one Kafka read per topic,
-- one checkpoint barrier across all sinks). Paimon commits on each checkpoint.
-- Rows without their key fields (bad JSON) are dropped here rather than failing the job.

EXECUTE STATEMENT SET
BEGIN

-- trades: the primary key (dt, market, sequential_id) makes every re-delivery an overwrite
INSERT INTO `{{ catalog }}`.`{{ database }}`.`trade`
SELECT {{ trade_dt }} AS `dt`, {{ trade_columns }}
FROM `kafka_trade`
WHERE {{ trade_valid }};

INSERT INTO `{{ catalog }}`.`{{ database }}`.`ticker`
SELECT {{ ticker_dt }} AS `dt`, {{ ticker_columns }}
FROM `kafka_ticker`
WHERE {{ ticker_valid }};

INSERT INTO `{{ catalog }}`.`{{ database }}`.`orderbook`
SELECT {{ orderbook_dt }} AS `dt`, {{ orderbook_columns }}
FROM `kafka_orderbook`
WHERE {{ orderbook_valid }};

-- latest ticker per market: the table's sequence.field (timestamp) keeps the newest by
-- exchange time, whatever order the events arrive in
INSERT INTO `{{ catalog }}`.`{{ database }}`.`ticker_latest`
SELECT {{ ticker_dt }} AS `dt`, {{ ticker_columns }}
FROM `kafka_ticker`
WHERE {{ ticker_valid }};

-- 1-minute candles, right whatever order and however late trades arrive (REST backfill
-- after a reconnect or a restart delivers trades minutes late). No window closes on the
-- watermark: an updating aggregate keyed by (dt, market, minute) re-emits the candle of a
-- minute whenever one of its trades arrives, and the ohlcv_1m primary key
-- (dt, market, window_start) turns every re-emission into an overwrite.
--   1. deduplicate: Kafka is at-least-once, so a trade (market, sequential_id) can arrive
--      twice; keep its first copy (ROW_NUMBER by arrival = Flink's deduplication operator,
--      append-only output, one small state entry per trade);
--   2. aggregate: open/close are the first/last trade by (trade_timestamp, sequential_id),
--      not by arrival: MIN/MAX of the sortable key "<trade_timestamp><sequential_id>|<price>".
-- Both states expire after table.exec.state.ttl = flink.state_ttl (the backfill horizon).
INSERT INTO `{{ catalog }}`.`{{ database }}`.`ohlcv_1m`
SELECT
  `dt`,
  `market`,
  `window_start`,
  `window_start` + INTERVAL '1' MINUTE AS `window_end`,
  CAST(SPLIT_INDEX(MIN(`order_key`), '|', 1) AS DOUBLE) AS `open`,
  MAX(`trade_price`) AS `high`,
  MIN(`trade_price`) AS `low`,
  CAST(SPLIT_INDEX(MAX(`order_key`), '|', 1) AS DOUBLE) AS `close`,
  SUM(`trade_volume`) AS `volume`,
  SUM(`trade_price` * `trade_volume`) AS `quote_volume`,
  SUM(`trade_price` * `trade_volume`) / NULLIF(SUM(`trade_volume`), 0) AS `vwap`,
  COUNT(*) AS `trade_count`
FROM (
  SELECT
    {{ window_dt }} AS `dt`,
    `market`, `window_start`, `trade_price`, `trade_volume`,
    CONCAT(
      LPAD(CAST(`trade_timestamp` AS STRING), 15, '0'),
      LPAD(CAST(`sequential_id` AS STRING), 20, '0'),
      '|',
      CAST(`trade_price` AS STRING)
    ) AS `order_key`
  FROM (
    SELECT
      `market`, `sequential_id`, `trade_timestamp`, `trade_price`, `trade_volume`,
      CAST(
        TO_TIMESTAMP_LTZ(`trade_timestamp` - MOD(`trade_timestamp`, 60000), 3) AS TIMESTAMP(3)
      ) AS `window_start`
    FROM (
      SELECT *,
        ROW_NUMBER() OVER (PARTITION BY `market`, `sequential_id` ORDER BY `proc_time` ASC)
          AS `copy_no`
      FROM `kafka_trade`
      WHERE {{ trade_valid }} AND `trade_price` IS NOT NULL AND `trade_volume` IS NOT NULL
    )
    WHERE `copy_no` = 1
  )
)
GROUP BY `dt`, `market`, `window_start`;

END;
