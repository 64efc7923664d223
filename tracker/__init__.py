"""The tracking layer: events from the pixel to ClickHouse, and the stores everything else uses.

It holds what the pixel and the batch writer need and nothing above them: settings from the
environment, the Redis and ClickHouse clients (``stores``, ``clickhouse``), event validation and
signing, visitor identity, the event stream and its spool, the ClickHouse schema and migrations,
the batch writer, and data retention. It is the lowest layer: ``adserver`` builds on it, and it
never imports ``adserver``, so the writer process starts without the web application.
"""
