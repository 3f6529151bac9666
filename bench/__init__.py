"""Benchmarks: scripts that print figures (see doc/Performance.md)."""
