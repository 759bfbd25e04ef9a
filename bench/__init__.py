"""Benchmarks: every figure printed beside its baseline measured in the same run."""
