"""The Flink SQL templates, shipped inside the wheel as ``upbitpipe.flink.sql``.

This file only makes the folder a package (so the templates travel with ``pip install``);
the ``*.sql`` files beside it are what you read and edit. See docs/flink.md.
"""
