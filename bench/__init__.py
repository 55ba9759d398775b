"""Benchmarks: each script prints a table, or one JSON object with ``--json``."""
