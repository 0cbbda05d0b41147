"""Moving events from Upbit to the sinks: connections, sharding, backfill, deduplication."""
