-- 03 - the lake tables, generated from upbitpipe.lake.tables (the pypaimon lake sink creates
-- the very same tables, so either writer may come first).
--   trade          PK (dt, market, sequential_id), deduplicate: each trade stored once
--   ticker         full history, PK (dt, market, timestamp, acc_trade_volume)
--   orderbook      full history, PK (dt, market, timestamp, total_ask_size, total_bid_size)
--   ticker_latest  PK (market), newest by exchange time (sequence.field = timestamp)
--   ohlcv_1m       PK (dt, market, window_start), 1-minute candles on event time
-- dt = yyyy-MM-dd of the event time in {{ timezone }}.

{{ paimon_tables }};
