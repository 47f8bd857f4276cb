"""Benchmarks: `make bench` (= `python -m bench`). Not tests: nothing in `tests/` times code."""
