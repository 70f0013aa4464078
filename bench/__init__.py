"""Cove's benchmarks: each prints its figures next to a floor measured in the same run."""
