"""Postgate's benchmarks: `make bench` (or `python -m bench`) writes bench/RESULTS.md."""
