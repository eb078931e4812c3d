"""User-facing tools built on sessions: benchmarks, profiler, model zoo, conformance runner."""
