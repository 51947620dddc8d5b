"""Benchmarks: they measure and write results; tests never assert on wall-clock time."""
