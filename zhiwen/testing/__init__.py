"""Test doubles and fixtures shared by integration tests and benchmarks."""
