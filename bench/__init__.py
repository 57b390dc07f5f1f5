"""Benchmarks (`make bench`): print the figures issues ask for. Not part of `make test`."""
