"""Benchmark at scale (issue #10): a fast journal generator, the bare-DuckDB floor, a pandas peer,
chart latency through Superset, and the runner behind `make bench` (python -m bench)."""
