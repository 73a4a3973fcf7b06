"""Fault tests: real redis-server processes, broken on purpose by the tests."""
