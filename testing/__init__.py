"""Harnesses for tests, benchmarks and the demo: a live issuer process, generated phone screens and frames.

No product module imports this package; it is not installed with the distribution.
"""
