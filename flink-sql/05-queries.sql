-- 05 - analytics over the lake (batch reads of the current snapshot).
-- Run with: upbitpipe flink submit 05-queries.sql --local
-- (01-create-catalogs runs first automatically).

SET 'execution.runtime-mode' = 'batch';

-- trades per market and day, with volume and value traded
SELECT `dt`, `market`, COUNT(*) AS `trades`, SUM(`trade_volume`) AS `volume`,
       SUM(`trade_price` * `trade_volume`) AS `value`,
       MIN(`trade_price`) AS `low`, MAX(`trade_price`) AS `high`
FROM `{{ catalog }}`.`{{ database }}`.`trade`
GROUP BY `dt`, `market`
ORDER BY `dt` DESC, `market`
LIMIT 50;

-- buy/sell pressure per market: share of volume taken by buyers (BID = buyer-initiated)
SELECT `market`,
       SUM(CASE WHEN `ask_bid` = 'BID' THEN `trade_volume` ELSE 0 END)
         / NULLIF(SUM(`trade_volume`), 0) AS `buy_share`,
       COUNT(*) AS `trades`
FROM `{{ catalog }}`.`{{ database }}`.`trade`
GROUP BY `market`
ORDER BY `market`
LIMIT 50;

-- the latest candles
SELECT `market`, `window_start`, `open`, `high`, `low`, `close`, `volume`, `vwap`, `trade_count`
FROM `{{ catalog }}`.`{{ database }}`.`ohlcv_1m`
ORDER BY `window_start` DESC, `market`
LIMIT 20;

-- latest ticker per market
SELECT `market`, `trade_price`, `signed_change_rate`, `acc_trade_price_24h`,
       TO_TIMESTAMP_LTZ(`timestamp`, 3) AS `at`
FROM `{{ catalog }}`.`{{ database }}`.`ticker_latest`
ORDER BY `market`
LIMIT 50;

-- orderbook spread and depth per market and hour
SELECT `market`,
       DATE_FORMAT(TO_TIMESTAMP_LTZ(`timestamp`, 3), 'yyyy-MM-dd HH:00') AS `hour`,
       COUNT(*) AS `books`,
       AVG(`spread`) AS `avg_spread`,
       AVG(`total_ask_size`) AS `avg_ask_depth`,
       AVG(`total_bid_size`) AS `avg_bid_depth`
FROM `{{ catalog }}`.`{{ database }}`.`orderbook`
GROUP BY `market`, DATE_FORMAT(TO_TIMESTAMP_LTZ(`timestamp`, 3), 'yyyy-MM-dd HH:00')
ORDER BY `hour` DESC, `market`
LIMIT 50;
