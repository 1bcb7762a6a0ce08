"""Loupe's reproducible performance benchmarks (`python -m benchmarks.run`, `make bench`)."""
