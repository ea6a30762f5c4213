"""Benchmarks: slashbots against the limit and the alternatives, each beside a baseline from the same run."""
