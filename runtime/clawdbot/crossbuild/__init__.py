"""Cross-build: board targets, toolchains, runtime bundles."""
