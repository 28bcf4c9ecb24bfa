"""Benchmark of the imaging pipeline: time to standardise phone photos against the decode floor."""
