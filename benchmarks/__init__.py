"""Benchmark scripts and the ``benchmarks.throughput`` package (run from the repository root)."""
