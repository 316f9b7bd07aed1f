"""Evaluation helpers: retrieval metrics and the suites that use them."""
