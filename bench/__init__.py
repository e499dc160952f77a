"""Benchmarks: `python -m bench` runs them all; results go to bench/.scratch/ (--write: tracked)."""
