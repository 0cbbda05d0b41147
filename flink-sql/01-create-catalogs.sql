-- 01 - the Paimon catalog of the lake.
-- Rendered by `upbitpipe flink submit` from the config (lake.warehouse, s3.*). S3 keys are
-- injected at submit time and never written to disk; `--dry-run` shows them masked.
-- Every submission is a new Flink session, so this file always runs first.

CREATE CATALOG `{{ catalog }}` WITH (
{{ catalog_options }}
);

CREATE DATABASE IF NOT EXISTS `{{ catalog }}`.`{{ database }}`;
