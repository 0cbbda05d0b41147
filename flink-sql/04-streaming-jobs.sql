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

-- 1-minute candles on event time. Duplicated trades (same market + sequential_id) are
-- removed per window first (window deduplication), then aggregated. Open and close follow
-- trade time, then sequential_id - not arrival order: MIN/MAX of a sortable key
-- "<trade_timestamp><sequential_id>|<price>" picks the first and the last trade of the
-- window, whatever order they arrived in (a window closes when the watermark passes its end).
INSERT INTO `{{ catalog }}`.`{{ database }}`.`ohlcv_1m`
SELECT
  {{ window_dt }} AS `dt`,
  `market`,
  `window_start`,
  `window_end`,
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
    `market`, `trade_price`, `trade_volume`, `window_start`, `window_end`, `window_time`,
    CONCAT(
      LPAD(CAST(`trade_timestamp` AS STRING), 15, '0'),
      LPAD(CAST(`sequential_id` AS STRING), 20, '0'),
      '|',
      CAST(`trade_price` AS STRING)
    ) AS `order_key`
  FROM (
    SELECT *,
      ROW_NUMBER() OVER (
        PARTITION BY `window_start`, `window_end`, `market`, `sequential_id`
        ORDER BY `event_time` ASC
      ) AS `copy_no`
    FROM TABLE(TUMBLE(TABLE `kafka_trade`, DESCRIPTOR(`event_time`), INTERVAL '1' MINUTE))
    WHERE {{ trade_valid }} AND `trade_price` IS NOT NULL AND `trade_volume` IS NOT NULL
  )
  WHERE `copy_no` = 1
)
GROUP BY `market`, `window_start`, `window_end`;

END;
