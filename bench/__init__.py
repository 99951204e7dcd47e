"""Benchmark harness (see bench/README.md). Nothing here is imported by the product."""
